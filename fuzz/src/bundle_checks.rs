//! What the fuzz target `bundle` checks on one input: bytes as a bundle file
//! being imported (`HBB1`, [`heartbridge_core::bundle::parse`]) and as QR
//! frames being read ([`heartbridge_core::bundle::qr`]).
//!
//! Shared, by path, between the fuzz target (`fuzz/fuzz_targets/bundle.rs`)
//! and the replay test `crates/core/tests/fuzz_bundle.rs`. Each check must
//! return normally for every input; a panic is a finding.

use heartbridge_core::bundle::{parse, qr, BundleError, MAX_BUNDLE_ENVELOPES};
use heartbridge_core::proto::DeviceSecret;

/// A fixed exporting key: no input verifies under it unless it was made
/// with it (the seeds are).
pub fn fixed_exporter() -> DeviceSecret {
    DeviceSecret::from_bytes(&[7u8; 64]).expect("a fixed device key")
}

/// Target `bundle`.
pub fn bundle(data: &[u8]) {
    // As a bundle file.
    match parse(data) {
        Ok(p) => {
            assert!(p.envelopes.len() <= MAX_BUNDLE_ENVELOPES);
            // Verifying never panics; once a byte it covers changes, the
            // signature no longer verifies.
            let pk = fixed_exporter().public().sign;
            if p.verify(data, &pk) {
                let mut flipped = data.to_vec();
                let last_signed = flipped.len() - 65;
                flipped[last_signed] ^= 1;
                assert!(!p.verify(&flipped, &pk), "changed content verified");
            }
        }
        Err(BundleError::Truncated { have, want }) => {
            assert!(have < want, "truncated means shorter than announced");
        }
        Err(_) => {}
    }
    // As QR frames: the input cut at every 0xff byte, in order.
    let mut asm = qr::Assembler::new();
    for piece in data.split(|&b| b == 0xff) {
        if let Ok(f) = qr::parse_frame(piece) {
            assert!(f.index >= 1 && f.index <= f.count);
            assert!(f.payload.len() <= qr::FRAME_PAYLOAD);
        }
        let _ = asm.add(piece);
    }
    let missing = asm.missing();
    match asm.finish() {
        Ok(bytes) => {
            assert!(missing.is_empty());
            assert!(bytes.len() <= asm.count() * qr::FRAME_PAYLOAD);
        }
        Err(qr::QrError::Missing { missing: named, .. }) => assert_eq!(named, missing),
        Err(_) => {}
    }
    // Any bytes cut into frames come back whole, in any order.
    if data.len() <= 8 * qr::FRAME_PAYLOAD {
        let mut frames = qr::frames(data).expect("small enough for QR");
        frames.reverse();
        let mut asm = qr::Assembler::new();
        for f in &frames {
            asm.add(f).expect("its own frames");
        }
        assert_eq!(asm.finish().expect("every frame"), data);
    }
}
