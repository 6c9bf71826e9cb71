//! The demo `cargo run --release` shows: the buddy allocator splitting blocks on allocation
//! and merging them back on free, narrated from what actually happened (the narration is
//! computed from the free-area counts before and after each call, not scripted).

#![forbid(unsafe_code)]

use std::io::{self, Write};

use kmem::mmzone::ZoneType;
use kmem::{GfpFlags, Order, PagePtr, PAGE_SIZE};

use crate::kernel::Kernel;

/// Orders above `PAGE_ALLOC_COSTLY_ORDER` (3) bypass the per-CPU lists, so every allocation
/// and free below shows directly in the free areas.
const ORDERS: [(char, u32); 3] = [('A', 5), ('B', 5), ('C', 7)];

struct Style {
    on: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    fn up(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn down(&self, s: &str) -> String {
        self.paint("31", s)
    }
}

type Counts = [usize; 11];

/// Runs the demo, writing to `out`; `color` adds ANSI colours.
///
/// # Errors
/// Writing failed.
pub fn run(k: &Kernel, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let st = Style { on: color };
    let m = &k.m;
    // ZONE_DMA (the first 16 MiB) is used by nothing else at this point, so every change in
    // its free areas is one of ours.
    let gfp = GfpFlags::GFP_DMA;
    writeln!(
        out,
        "{}",
        st.bold(&format!(
            "kmem demo: the Linux buddy allocator on a simulated {} machine ({} MiB, {} CPUs)",
            m.arch(),
            m.e820().ram_total() >> 20,
            m.nr_cpus()
        ))
    )?;
    writeln!(out)?;
    let mut log = String::new();
    let _ = m.dmesg(&mut log, false);
    if let Some(l) = log.lines().find(|l| l.starts_with("Memory:")) {
        writeln!(out, "Booted. {}", st.dim(l))?;
    }
    writeln!(
        out,
        "memblock handed every free page to the buddy allocator, in blocks of 2^order pages\n\
         (order 0 = 4 KiB … order 10 = 4 MiB). /proc/buddyinfo counts the free blocks of each\n\
         order, zone by zone:\n"
    )?;
    let mut s = String::new();
    let _ = m.proc_read("/proc/buddyinfo", &mut s);
    let before_info = s.clone();
    write!(out, "{}", indent(&s))?;

    // Which zone the allocations come from.
    let zone = kmem::page_alloc::gfp_zone(m.arch(), gfp);
    let zone = m
        .arch()
        .zones()
        .iter()
        .copied()
        .rfind(|z| z.index() <= zone.index() && m.zone(*z).geo.present > 0)
        .unwrap_or(ZoneType::Dma);
    writeln!(
        out,
        "\nThe demo allocates with GFP_DMA, from ZONE_{}: the first 16 MiB, which nothing else\n\
         uses here, so every change in its row below is ours. (Orders 0-3 would first go\n\
         through per-CPU page lists, which take and return pages in batches; the demo uses\n\
         larger blocks so that every step shows in the free areas.)\n",
        zone.name().to_uppercase()
    )?;
    header(out, &st)?;
    let mut counts = m.free_area_counts(zone);
    row(out, &st, "at boot", &counts, None)?;
    writeln!(out)?;

    let mut blocks: Vec<(char, u32, PagePtr)> = Vec::new();
    for (name, order) in ORDERS {
        let o = Order::new(order);
        let Some(page) = m.alloc_pages(gfp, o) else {
            writeln!(out, "alloc_pages(GFP_DMA, {order}) failed")?;
            return Ok(());
        };
        let after = m.free_area_counts(m.page_ref(page).expect("an allocated page").zone_type());
        let pfn = m.page_to_pfn(page).as_u64();
        writeln!(
            out,
            "{} = alloc_pages(GFP_DMA, {order})   {}",
            st.bold(&name.to_string()),
            st.dim(&format!(
                "struct page {:#x}, pfn {pfn:#x}, {} KiB at {:#x}",
                k.page_model(page),
                (PAGE_SIZE << order) >> 10,
                m.page_address(page)
                    .map(|a| k.model(a.as_usize()))
                    .unwrap_or(0)
            ))
        )?;
        let story = if let Some(&(bname, border, bpage)) = blocks
            .iter()
            .find(|(_, bo, bp)| *bo == order && m.page_to_pfn(*bp).as_u64() ^ (1 << order) == pfn)
        {
            let _ = (border, bpage);
            format!(
                "an order-{order} block was free: the half left over when {bname} was split. {name} is {bname}'s buddy\n\
                 (pfn {pfn:#x} = pfn of {bname} XOR 2^{order})."
            )
        } else {
            explain_alloc(&counts, &after, order)
        };
        write!(out, "{}", indent(&story))?;
        row(out, &st, zone.name(), &after, Some(&counts))?;
        writeln!(out)?;
        counts = after;
        blocks.push((name, order, page));
    }

    for (name, order, page) in blocks.clone() {
        m.__free_pages(page, Order::new(order));
        let after = m.free_area_counts(
            m.page_ref(page)
                .expect("a page of this machine")
                .zone_type(),
        );
        writeln!(out, "__free_pages({}, {order})", st.bold(&name.to_string()))?;
        write!(out, "{}", indent(&explain_free(&counts, &after, order)))?;
        row(out, &st, zone.name(), &after, Some(&counts))?;
        writeln!(out)?;
        counts = after;
    }

    let mut s = String::new();
    let _ = m.proc_read("/proc/buddyinfo", &mut s);
    writeln!(out, "/proc/buddyinfo again:\n")?;
    write!(out, "{}", indent(&s))?;
    if s == before_info {
        writeln!(
            out,
            "\n{} every split was undone by a merge: the free areas are exactly as at boot.",
            st.up("Identical to the boot state:")
        )?;
    } else {
        writeln!(out, "\n(The free areas differ from the boot state.)")?;
    }
    writeln!(
        out,
        "\nTry it yourself: {}\n\
         or {} (help lists the functions).",
        st.bold("cargo run --release -- shell"),
        st.bold("echo 'p = alloc_pages(GFP_KERNEL, 5); cat /proc/buddyinfo' | cargo run --release -- shell")
    )?;
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

fn header(out: &mut dyn Write, st: &Style) -> io::Result<()> {
    let mut h = format!("    {:<10}", "order");
    for o in 0..11 {
        h.push_str(&format!("{o:>6}"));
    }
    writeln!(out, "{}", st.dim(&h))
}

fn row(
    out: &mut dyn Write,
    st: &Style,
    label: &str,
    now: &Counts,
    before: Option<&Counts>,
) -> io::Result<()> {
    let mut r = format!("    {label:<10}");
    for o in 0..11 {
        let cell = format!("{:>6}", now[o]);
        r.push_str(&match before {
            Some(b) if now[o] > b[o] => st.up(&cell),
            Some(b) if now[o] < b[o] => st.down(&cell),
            _ => cell,
        });
    }
    if let Some(b) = before {
        let mut d = String::new();
        for o in 0..11 {
            let delta = now[o] as i64 - b[o] as i64;
            if delta != 0 {
                d.push_str(&format!(" {o}:{delta:+}"));
            }
        }
        r.push_str(&st.dim(&format!("   ({})", d.trim_start())));
    }
    writeln!(out, "{r}")
}

fn explain_alloc(before: &Counts, after: &Counts, order: u32) -> String {
    let o = order as usize;
    if after[o] + 1 == before[o] && (0..11).all(|i| i == o || after[i] == before[i]) {
        return format!("a free order-{order} block was taken as it was: no split needed.");
    }
    match (o + 1..11).find(|&s| after[s] + 1 == before[s]) {
        Some(s) => {
            let steps: Vec<String> = (o..=s).rev().map(|i| i.to_string()).collect();
            format!(
                "no order-{order} block was free, so an order-{s} block was split in halves,\n\
                 {}: one half of each split stays free (+1 at orders {order}..{}),\n\
                 the last half is the block we got.",
                steps.join(" -> "),
                s - 1
            )
        }
        None => "the free areas changed as shown.".to_string(),
    }
}

fn explain_free(before: &Counts, after: &Counts, order: u32) -> String {
    let o = order as usize;
    if after[o] == before[o] + 1 && (0..11).all(|i| i == o || after[i] == before[i]) {
        return format!(
            "its buddy (pfn XOR 2^{order}) is not free, so the block waits on the order-{order} free list."
        );
    }
    match (o + 1..11).find(|&s| after[s] == before[s] + 1) {
        Some(s) => format!(
            "its buddy was free, so they merged into an order-{} block, and so on up the orders:\n\
             the free buddies at orders {order}..{} were absorbed (-1 each) into one order-{s} block.",
            o + 1,
            s - 1
        ),
        None => "the free areas changed as shown.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrates_splits_and_merges() {
        let before = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
        let after = [1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 4];
        let s = explain_alloc(&before, &after, 5);
        assert!(s.contains("order-10 block was split"), "{s}");
        assert!(s.contains("10 -> 9 -> 8 -> 7 -> 6 -> 5"), "{s}");
        let mut took = before;
        took[10] -= 1;
        assert!(explain_alloc(&before, &took, 10).contains("taken as it was"));
        let s = explain_free(&after, &before, 5);
        assert!(s.contains("one order-10 block"), "{s}");
        let lone = [1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 4];
        let mut plus = lone;
        plus[7] += 1;
        assert!(explain_free(&lone, &plus, 7).contains("waits"));
    }
}
