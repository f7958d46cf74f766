//! `linkem`: the link emulator as a process, for tests that drive programs
//! they cannot link against (the real app through WebDriver).
//!
//! ```text
//! linkem --upstream 127.0.0.1:PORT [--listen 127.0.0.1:0]
//! ```
//!
//! Prints `listening on ADDR` once it accepts, then reads commands, one a
//! line, on standard input; it stops when standard input closes.
//!
//! | command | what it does |
//! | --- | --- |
//! | `cut MEAN` | new connections are reset after a random number of bytes (both directions counted), `1..=2*MEAN` |
//! | `bandwidth BPS` | a cap in bytes per second, each direction |
//! | `latency MS` | one-way latency |
//! | `clear` | a perfect link again (for new connections) |
//! | `reset` | reset every live connection now |
//! | `stats` | prints one line `stats connections=N cut=N reset=N up=N down=N` |
//!
//! Every command is answered with a line starting `ok` (or `error …`), so a
//! test can wait for it.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

use linkem::{BackgroundLink, Config, Cut, Direction, End, Offset};

fn usage() -> String {
    "usage: linkem --upstream ADDR [--listen ADDR] [--seed N]".into()
}

fn parse_args() -> Result<(SocketAddr, SocketAddr, u64), String> {
    let mut upstream = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse().map_err(|_| usage())?;
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(usage);
        match a.as_str() {
            "--upstream" => upstream = Some(value()?.parse().map_err(|_| usage())?),
            "--listen" => listen = value()?.parse().map_err(|_| usage())?,
            "--seed" => seed = value()?.parse().map_err(|_| usage())?,
            _ => return Err(usage()),
        }
    }
    Ok((upstream.ok_or_else(usage)?, listen, seed))
}

fn apply(link: &BackgroundLink, config: &mut Config, line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let mut number = || -> Result<u64, String> {
        words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("{cmd} needs a number"))
    };
    match cmd {
        "cut" => {
            let mean = number()?;
            config.cut = Some(Cut {
                counted: Direction::Both,
                at: Offset::Random { mean },
                end: End::Reset,
            });
        }
        "bandwidth" => config.bandwidth = Some(number()?),
        "latency" => config.latency = Duration::from_millis(number()?),
        "clear" => {
            *config = Config {
                seed: config.seed,
                ..Config::default()
            }
        }
        "reset" => {
            link.reset_all();
            return Ok("ok reset".into());
        }
        "stats" => {
            let s = link.stats();
            return Ok(format!(
                "stats connections={} cut={} reset={} up={} down={}",
                s.connections, s.cut, s.reset, s.bytes_up, s.bytes_down
            ));
        }
        "" => return Ok("ok".into()),
        other => return Err(format!("unknown command {other}")),
    }
    link.set_config(config.clone());
    Ok(format!("ok {cmd}"))
}

fn main() -> std::process::ExitCode {
    let (upstream, listen, seed) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut config = Config {
        seed,
        ..Config::default()
    };
    let listener = match std::net::TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("linkem: cannot listen on {listen}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let link = match BackgroundLink::start(listener, upstream, config.clone()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("linkem: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", link.addr());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer =
            apply(&link, &mut config, line.trim()).unwrap_or_else(|e| format!("error {e}"));
        let _ = writeln!(out, "{answer}");
        let _ = out.flush();
    }
    std::process::ExitCode::SUCCESS
}
