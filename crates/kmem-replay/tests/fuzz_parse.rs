//! Fuzzing the trace parser by proptest: real ftrace lines cut, spliced, with bytes flipped,
//! and random bytes (invalid UTF-8 included). The parser never panics, counts every line, and
//! either parses a line or counts it malformed — and the unmutated lines still parse.
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use kmem_replay::{parse_reader, Options, Replayer};

/// Lines of the real 6.18 trace (tests/data), one per event kind the parser knows.
const LINES: &[&str] = &[
    "           xargs-14101   [000] .....   330.340903: kmalloc: call_site=load_elf_phdrs+0x49/0xc0 ptr=ffff88815bf1f400 bytes_req=504 bytes_alloc=512 gfp_flags=GFP_KERNEL node=-1 accounted=false",
    "           xargs-14101   [000] .....   330.340951: kfree: call_site=vm_area_free+0x1c/0x90 ptr=0000000000000000",
    "           xargs-14101   [000] ...1.   330.340909: mm_page_alloc: page=ffffea0005ddfe80 pfn=0x1777fa order=0 migratetype=0 gfp_flags=GFP_NOWAIT",
    "           xargs-14101   [000] .....   330.340968: kmem_cache_alloc: call_site=mas_preallocate+0x3ef/0x430 ptr=ffff88811007df00 name=maple_node bytes_req=256 bytes_alloc=256 gfp_flags=GFP_KERNEL node=-1 accounted=false",
];

fn mutate(line: &str, cut: usize, splice: &str, at: usize, flips: &[(usize, u8)]) -> Vec<u8> {
    let mut b = line.as_bytes().to_vec();
    b.truncate(cut.min(b.len()).max(b.len() / 2));
    let at = at.min(b.len());
    b.splice(at..at, splice.bytes());
    for &(i, x) in flips {
        if !b.is_empty() {
            let i = i % b.len();
            b[i] ^= x;
        }
    }
    b
}

/// Adversarial lines: huge numbers in every field, control characters (terminal escape
/// sequences), lines longer than the parser reads whole.
fn adversarial_line() -> impl Strategy<Value = Vec<u8>> {
    let huge = (
        proptest::sample::select(LINES.to_vec()),
        proptest::sample::select(vec![
            "ptr=",
            "bytes_req=",
            "bytes_alloc=",
            "order=",
            "pfn=0x",
            "[",
            "migratetype=",
            "node=",
        ]),
        proptest::sample::select(vec![
            "99999999999999999999999999",
            "ffffffffffffffffffffffff",
            "-1",
            "18446744073709551616",
            "4294967296",
        ]),
    )
        .prop_map(|(l, field, v)| {
            let mut s = l.to_string();
            if let Some(i) = s.find(field) {
                let at = i + field.len();
                let end = s[at..].find([' ', ']']).map_or(s.len(), |e| at + e);
                s.replace_range(at..end, v);
            }
            s.into_bytes()
        });
    let controls = (
        proptest::sample::select(LINES.to_vec()),
        proptest::collection::vec(
            proptest::sample::select(vec![0x1bu8, 0x07, 0x0d, 0x00, 0x9b, 0x7f, b'[', b'2', b'J']),
            1..12,
        ),
        0usize..300,
    )
        .prop_map(|(l, c, at)| {
            let mut b = l.as_bytes().to_vec();
            let at = at.min(b.len());
            b.splice(at..at, c);
            b
        });
    let long = (0usize..3, any::<u8>()).prop_map(|(k, fill)| {
        let fill = if fill == b'\n' { b'x' } else { fill };
        vec![fill; kmem_replay::parse::MAX_LINE - 1 + k]
    });
    prop_oneof![huge, controls, long]
}

#[test]
fn mutated_and_random_traces_never_panic_the_parser() {
    let line = prop_oneof![
        adversarial_line(),
        (
            proptest::sample::select(LINES.to_vec()),
            0usize..300,
            proptest::sample::select(vec!["", "=", " ", "0x", "ptr=", "gfp_flags=|", ":"]),
            0usize..300,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        )
            .prop_map(|(l, cut, s, at, flips)| mutate(l, cut, s, at, &flips)),
        proptest::collection::vec(any::<u8>(), 0..200),
    ];
    let trace = proptest::collection::vec(line, 1..20);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(&trace, |lines| {
            let mut text = Vec::new();
            for l in &lines {
                text.extend(l.iter().filter(|&&c| c != b'\n'));
                text.push(b'\n');
            }
            // The real lines first, unmutated: they must still parse among the noise.
            for l in LINES {
                text.extend_from_slice(l.as_bytes());
                text.push(b'\n');
            }
            let t = parse_reader(&text[..]).unwrap();
            prop_assert_eq!(t.lines, (lines.len() + LINES.len()) as u64);
            prop_assert!(t.events.len() >= LINES.len());
            prop_assert!(t.malformed <= lines.len() as u64);
            prop_assert!(t.malformed_examples.len() <= t.malformed as usize);
            Ok(())
        })
        .unwrap();
}

/// Adversarial traces through the replayer as well: no panic, no hang, and the text report
/// carries no raw control character from the input.
#[test]
fn adversarial_traces_replay_and_report_safely() {
    let rp = std::cell::RefCell::new(
        Replayer::boot(&Options {
            mem: 64 << 20,
            prefault: false,
            ..Options::default()
        })
        .unwrap(),
    );
    let line = prop_oneof![
        adversarial_line(),
        proptest::sample::select(LINES.to_vec()).prop_map(|l| l.as_bytes().to_vec()),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 60,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(line, 1..12), |lines| {
            let mut text = Vec::new();
            for l in &lines {
                text.extend(l.iter().filter(|&&c| c != b'\n'));
                text.push(b'\n');
            }
            let t = parse_reader(&text[..]).unwrap();
            let mut rp = rp.borrow_mut();
            rp.replay(&t, &mut |_, _| {});
            let r = rp.report(&t);
            let mut s = String::new();
            r.write_text(&mut s).unwrap();
            prop_assert!(
                !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{:?}",
                s
            );
            prop_assert!(s.len() < 1 << 20);
            Ok(())
        })
        .unwrap();
}
