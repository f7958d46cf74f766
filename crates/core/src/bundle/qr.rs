//! A bundle as a sequence of QR codes, for two phones with no network at
//! all: the bundle's bytes cut into numbered frames, each one QR code.
//!
//! A frame is `"HBQ1 " i "/" n " " hash "\n"` followed by up to
//! [`FRAME_PAYLOAD`] bytes of the bundle, where `i` counts from 1, `n` is
//! the number of frames and `hash` is the first 8 hex digits of the
//! SHA-256 of the whole bundle (so frames of two exports never mix). Frames
//! are read in any order, a duplicate is ignored, and the bundle is whole
//! when every frame is there and its hash matches; what is missing is
//! named ([`QrError::Missing`]) so the sender shows those frames again.
//!
//! **Frame size.** 384 payload bytes (about 400 with the header) at error
//! correction level M is a QR code of version 15 or below (77×77 modules):
//! small enough for a phone camera to read from another phone's screen at
//! arm's length, with M's 15 % redundancy for glare; a 10 KB case export is
//! about 27 frames. Larger versions (1 KB and up) need a steady hand and a
//! good camera, smaller ones many more frames.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Bundle bytes carried by one frame.
pub const FRAME_PAYLOAD: usize = 384;
/// The most frames one sequence has (a bundle of about 384 KB).
pub const MAX_FRAMES: usize = 1000;
/// Pixels per QR module in the PNG images.
const MODULE_PX: u32 = 6;

/// A QR sequence that cannot be read (yet). The message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("this is not a Heartbridge QR frame: scan the codes the sending device shows under 导出 → 二维码")]
    NotAFrame,
    #[error("the frames come from two different exports: scan the frames of one export only (start again)")]
    Mixed,
    #[error("frames missing: {} of {count} (缺第 {}/{count} 帧，请再扫一次): show those frames on the sending device and scan them again", list(.missing), list(.missing))]
    Missing { missing: Vec<usize>, count: usize },
    #[error("the frames do not add up to the export they name (a frame was misread): scan them all again")]
    BadHash,
    #[error("no QR code could be read in {0}: take the picture again, closer and without glare")]
    Unreadable(String),
    #[error("the export is too large for QR codes (more than {MAX_FRAMES} frames): export it to a file instead")]
    TooLarge,
}

fn list(v: &[usize]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 1-based.
    pub index: usize,
    pub count: usize,
    pub hash: [u8; 4],
    pub payload: Vec<u8>,
}

fn hash_prefix(bytes: &[u8]) -> [u8; 4] {
    let h = Sha256::digest(bytes);
    [h[0], h[1], h[2], h[3]]
}

/// Cuts a bundle into frames (the bytes each QR code carries).
pub fn frames(bundle: &[u8]) -> Result<Vec<Vec<u8>>, QrError> {
    let count = bundle.len().div_ceil(FRAME_PAYLOAD).max(1);
    if count > MAX_FRAMES {
        return Err(QrError::TooLarge);
    }
    let hash = hex::encode(hash_prefix(bundle));
    Ok((0..count)
        .map(|i| {
            let chunk = &bundle[(i * FRAME_PAYLOAD).min(bundle.len())
                ..((i + 1) * FRAME_PAYLOAD).min(bundle.len())];
            let mut f = format!("HBQ1 {}/{count} {hash}\n", i + 1).into_bytes();
            f.extend_from_slice(chunk);
            f
        })
        .collect())
}

/// Reads one frame's bytes. Never panics, whatever the bytes.
pub fn parse_frame(bytes: &[u8]) -> Result<Frame, QrError> {
    let rest = bytes.strip_prefix(b"HBQ1 ").ok_or(QrError::NotAFrame)?;
    let nl = rest
        .iter()
        .take(40)
        .position(|&b| b == b'\n')
        .ok_or(QrError::NotAFrame)?;
    let head = std::str::from_utf8(&rest[..nl]).map_err(|_| QrError::NotAFrame)?;
    let (pos, hash) = head.split_once(' ').ok_or(QrError::NotAFrame)?;
    let (i, n) = pos.split_once('/').ok_or(QrError::NotAFrame)?;
    let index: usize = i.parse().map_err(|_| QrError::NotAFrame)?;
    let count: usize = n.parse().map_err(|_| QrError::NotAFrame)?;
    if index == 0 || index > count || count > MAX_FRAMES || hash.len() != 8 {
        return Err(QrError::NotAFrame);
    }
    let hash: [u8; 4] = hex::decode(hash)
        .ok()
        .and_then(|h| h.try_into().ok())
        .ok_or(QrError::NotAFrame)?;
    let payload = rest[nl + 1..].to_vec();
    if payload.len() > FRAME_PAYLOAD {
        return Err(QrError::NotAFrame);
    }
    Ok(Frame {
        index,
        count,
        hash,
        payload,
    })
}

/// Frames gathered so far, in any order.
#[derive(Debug, Default, Clone)]
pub struct Assembler {
    count: usize,
    hash: Option<[u8; 4]>,
    frames: BTreeMap<usize, Vec<u8>>,
}

impl Assembler {
    pub fn new() -> Assembler {
        Assembler::default()
    }

    /// Adds a frame (its bytes); a duplicate is ignored. A frame of
    /// another export is refused and changes nothing.
    pub fn add(&mut self, bytes: &[u8]) -> Result<(), QrError> {
        let f = parse_frame(bytes)?;
        match self.hash {
            Some(h) if h != f.hash || self.count != f.count => return Err(QrError::Mixed),
            Some(_) => {}
            None => {
                self.hash = Some(f.hash);
                self.count = f.count;
            }
        }
        self.frames.entry(f.index).or_insert(f.payload);
        Ok(())
    }

    /// The frames not read yet (1-based), in order.
    pub fn missing(&self) -> Vec<usize> {
        (1..=self.count)
            .filter(|i| !self.frames.contains_key(i))
            .collect()
    }

    /// How many frames the sequence has (0 before the first).
    pub fn count(&self) -> usize {
        self.count
    }

    /// The bundle, once every frame is there and it matches its hash.
    pub fn finish(&self) -> Result<Vec<u8>, QrError> {
        let missing = self.missing();
        if self.hash.is_none() || !missing.is_empty() {
            return Err(QrError::Missing {
                missing,
                count: self.count,
            });
        }
        let bytes: Vec<u8> = self.frames.values().flatten().copied().collect();
        if Some(hash_prefix(&bytes)) != self.hash {
            return Err(QrError::BadHash);
        }
        Ok(bytes)
    }
}

/// One frame as a PNG image of its QR code (error correction M).
pub fn frame_png(frame: &[u8]) -> Vec<u8> {
    let code = qrcode::QrCode::with_error_correction_level(frame, qrcode::EcLevel::M)
        .expect("a frame of FRAME_PAYLOAD bytes fits a QR code");
    let img = code
        .render::<image::Luma<u8>>()
        .module_dimensions(MODULE_PX, MODULE_PX)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encoding into memory");
    out.into_inner()
}

/// The frames in an image (a PNG or JPEG file's bytes): every QR code found
/// in it, decoded. `name` is only for the error.
pub fn read_image(bytes: &[u8], name: &str) -> Result<Vec<Vec<u8>>, QrError> {
    let img = image::load_from_memory(bytes)
        .map_err(|_| QrError::Unreadable(name.to_owned()))?
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let mut out = Vec::new();
    for grid in prepared.detect_grids() {
        let mut data = Vec::new();
        if grid.decode_to(&mut data).is_ok() {
            out.push(data);
        }
    }
    if out.is_empty() {
        return Err(QrError::Unreadable(name.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn frames_in_any_order_with_duplicates_give_the_bundle_back() {
        let b = bundle(FRAME_PAYLOAD * 4 + 17);
        let mut fs = frames(&b).unwrap();
        assert_eq!(fs.len(), 5);
        fs.reverse();
        fs.push(fs[1].clone());
        let mut a = Assembler::new();
        for f in &fs {
            a.add(f).unwrap();
        }
        assert_eq!(a.finish().unwrap(), b);
    }

    #[test]
    fn a_missing_frame_is_named_and_can_be_added_later() {
        let b = bundle(FRAME_PAYLOAD * 6 + 1);
        let fs = frames(&b).unwrap();
        let mut a = Assembler::new();
        for (i, f) in fs.iter().enumerate() {
            if i != 2 {
                a.add(f).unwrap();
            }
        }
        let e = a.finish().unwrap_err();
        assert_eq!(
            e,
            QrError::Missing {
                missing: vec![3],
                count: 7
            }
        );
        assert!(e.to_string().contains("缺第 3/7 帧"), "{e}");
        a.add(&fs[2]).unwrap();
        assert_eq!(a.finish().unwrap(), b);
    }

    #[test]
    fn frames_of_another_export_or_garbage_are_refused() {
        let fs = frames(&bundle(1000)).unwrap();
        let other = frames(&bundle(999)).unwrap();
        let mut a = Assembler::new();
        a.add(&fs[0]).unwrap();
        assert_eq!(a.add(&other[1]), Err(QrError::Mixed));
        assert_eq!(a.add(b"hello"), Err(QrError::NotAFrame));
        assert_eq!(a.add(b"HBQ1 0/3 00000000\n"), Err(QrError::NotAFrame));
        // A frame whose payload was altered: the hash tells.
        let mut a = Assembler::new();
        let mut bad = fs.clone();
        let last = bad[1].len() - 1;
        bad[1][last] ^= 1;
        for f in &bad {
            a.add(f).unwrap();
        }
        assert_eq!(a.finish(), Err(QrError::BadHash));
    }

    #[test]
    fn a_frame_survives_its_png_round_trip() {
        let b = bundle(FRAME_PAYLOAD * 2);
        let fs = frames(&b).unwrap();
        let png = frame_png(&fs[1]);
        let read = read_image(&png, "frame-2.png").unwrap();
        assert_eq!(read, vec![fs[1].clone()]);
        assert!(matches!(
            read_image(b"not an image", "x.png"),
            Err(QrError::Unreadable(_))
        ));
    }
}
