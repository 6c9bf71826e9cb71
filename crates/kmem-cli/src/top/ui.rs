//! The terminal view of `kmem top` (ratatui on crossterm). Keys, as in slabtop where it has
//! them: `c` `o` `a` `u` `S` `n` sort by cache size, objects, active, use, object size,
//! name; `s` cycles the sort; `/` filters by name (Enter ends, Esc clears); `p` or space
//! pauses; `q` or Esc quits. Resizing redraws.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind};
use crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use crossterm::ExecutableCommand;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use ratatui::Terminal;

use super::data::{self, Frame, SortKey, Timed, COUNTER_NAMES};
use super::Source;

/// Restores the terminal however the view ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        let _ = io::stdout().execute(LeaveAlternateScreen);
        let _ = io::stdout().execute(crossterm::cursor::Show);
    }
}

struct State {
    sort: SortKey,
    filter: String,
    editing: bool,
    paused: bool,
    history: VecDeque<Timed>,
    error: Option<String>,
    frames: u64,
}

pub fn run(mut src: Source, interval: Duration) -> Result<(), String> {
    terminal::enable_raw_mode().map_err(|e| format!("terminal: {e}"))?;
    let _restore = Restore;
    io::stdout()
        .execute(EnterAlternateScreen)
        .map_err(|e| e.to_string())?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout())).map_err(|e| e.to_string())?;
    let name = src.name();
    let mut st = State {
        sort: SortKey::Size,
        filter: String::new(),
        editing: false,
        paused: false,
        history: VecDeque::new(),
        error: None,
        frames: 0,
    };
    let mut next_sample = Instant::now();
    let started = Instant::now();
    let mut samples = 0u64;
    let result = loop {
        if !st.paused && Instant::now() >= next_sample {
            next_sample = Instant::now() + interval;
            match src.sample() {
                Ok(Some(s)) => {
                    samples += 1;
                    st.history.push_back(Timed {
                        s,
                        t: Instant::now(),
                    });
                    // Rates over about the last second.
                    while st.history.len() > 2
                        && st.history[0].t.elapsed() > Duration::from_millis(1100)
                    {
                        st.history.pop_front();
                    }
                    st.error = None;
                }
                Ok(None) => {}
                Err(e) => st.error = Some(e),
            }
        }
        if let Some(now) = st.history.back() {
            let old = (st.history.len() > 1).then(|| &st.history[0]);
            let mut f = data::frame(&name, now, old, st.sort, &st.filter);
            f.paused = st.paused;
            if let Some(e) = &st.error {
                f.notes.push(e.clone());
            }
            st.frames += 1;
            if let Err(e) = term.draw(|fr| draw(fr, &f, st.editing)) {
                break Err(e.to_string());
            }
        } else if let Some(e) = &st.error {
            break Err(e.clone());
        }
        let wait = next_sample
            .saturating_duration_since(Instant::now())
            .min(FRAME);
        match event::poll(wait) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => {
                    if key(&mut st, k.code) {
                        break Ok(());
                    }
                }
                // The next draw uses the new size.
                Ok(Event::Resize(..)) => {
                    if let Err(e) = term.autoresize() {
                        break Err(e.to_string());
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(e.to_string()),
            },
            Ok(false) => {}
            Err(e) => break Err(e.to_string()),
        }
    };
    // For docs/BENCHMARKS.md: frames drawn and samples taken (KMEM_TOP_STATS=FILE).
    if let Some(p) = std::env::var_os("KMEM_TOP_STATS") {
        let secs = started.elapsed().as_secs_f64();
        let _ = std::fs::write(
            p,
            format!(
                "frames {} samples {samples} seconds {secs:.2} fps {:.1}\n",
                st.frames,
                st.frames as f64 / secs
            ),
        );
    }
    result
}

/// The longest time between two frames (20 per second at most, 10 at least when idle).
const FRAME: Duration = Duration::from_millis(50);

/// Handles a key; `true` to quit.
fn key(st: &mut State, code: KeyCode) -> bool {
    if st.editing {
        match code {
            KeyCode::Enter => st.editing = false,
            KeyCode::Esc => {
                st.editing = false;
                st.filter.clear();
            }
            KeyCode::Backspace => {
                st.filter.pop();
            }
            KeyCode::Char(c) => st.filter.push(c),
            _ => {}
        }
        return false;
    }
    match code {
        KeyCode::Char('q') | KeyCode::Esc => return true,
        KeyCode::Char('s') => st.sort = st.sort.next(),
        KeyCode::Char('/') => st.editing = true,
        KeyCode::Char('p' | ' ') => st.paused = !st.paused,
        KeyCode::Char(c) => {
            if let Some(k) = SortKey::from_key(c) {
                st.sort = k;
            }
        }
        _ => {}
    }
    false
}

fn draw(fr: &mut ratatui::Frame<'_>, f: &Frame, editing: bool) {
    let zones_h = (f.zones.len() as u16) * 2 + 3;
    let chunks = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(3),
            Constraint::Length(zones_h),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(fr.area());
    draw_header(fr, chunks[0], f);
    draw_zones(fr, chunks[1], f);
    draw_caches(fr, chunks[2], f);
    let help = if editing {
        format!("filter: {}▏ (Enter: done, Esc: clear)", f.filter)
    } else {
        "q quit  s cycle sort  c/o/a/u/S/n sort by size/objs/active/use/objsize/name  / filter  p pause"
            .to_string()
    };
    fr.render_widget(
        Paragraph::new(help).style(Style::default().add_modifier(Modifier::REVERSED)),
        chunks[3],
    );
}

fn draw_header(fr: &mut ratatui::Frame<'_>, area: Rect, f: &Frame) {
    let rates: Vec<Span> = COUNTER_NAMES
        .iter()
        .zip(f.rates)
        .flat_map(|(n, r)| {
            [
                Span::raw(format!("{n} ")),
                Span::styled(
                    r.map_or("-".to_string(), |v| format!("{v:.0}")),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw("   "),
            ]
        })
        .collect();
    let mut title = format!(" kmem top — {} ", f.source);
    if f.paused {
        title.push_str("[paused] ");
    }
    let mut lines = vec![Line::from(rates)];
    if let Some(n) = f.notes.first() {
        lines[0]
            .spans
            .push(Span::styled(n.clone(), Style::default().fg(Color::Yellow)));
    }
    fr.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn bar(v: u64, max: u64, width: usize) -> String {
    if max == 0 {
        return " ".repeat(width);
    }
    let n = ((v.min(max) as f64 / max as f64) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(n), "·".repeat(width - n))
}

fn draw_zones(fr: &mut ratatui::Frame<'_>, area: Rect, f: &Frame) {
    let mut lines = Vec::new();
    let bw = (area.width as usize).saturating_sub(40).clamp(10, 60);
    for z in &f.zones {
        // Free pages against the high watermark's multiple, with the watermarks marked.
        let scale = z.managed.max(1);
        let colour = if z.free < z.min {
            Color::Red
        } else if z.free < z.high {
            Color::Yellow
        } else {
            Color::Green
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<7}free ", z.name)),
            Span::styled(bar(z.free, scale, bw), Style::default().fg(colour)),
            Span::raw(format!(
                " {} of {} (min {} low {} high {})",
                z.free, z.managed, z.min, z.low, z.high
            )),
        ]));
        // Buddyinfo: pages per order as a small bar each.
        let pages: Vec<u64> = z.blocks.iter().enumerate().map(|(o, &n)| n << o).collect();
        let maxp = pages.iter().copied().max().unwrap_or(0);
        let mut spans = vec![Span::raw("       order ")];
        for (o, &p) in pages.iter().enumerate() {
            spans.push(Span::raw(format!("{o}:")));
            spans.push(Span::styled(
                bar(p, maxp, 3),
                Style::default().fg(Color::Cyan),
            ));
            spans.push(Span::raw(" "));
        }
        lines.push(Line::from(spans));
    }
    fr.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" zones: free pages and watermarks; free pages per order (buddyinfo) "),
        ),
        area,
    );
}

fn draw_caches(fr: &mut ratatui::Frame<'_>, area: Rect, f: &Frame) {
    let head = [
        "OBJS",
        "ACTIVE",
        "USE",
        "OBJ SIZE",
        "SLABS",
        "CACHE SIZE",
        "NAME",
    ];
    let sorted_col = match f.sort {
        SortKey::Objs => 0,
        SortKey::Active => 1,
        SortKey::Use => 2,
        SortKey::ObjSize => 3,
        SortKey::Size => 5,
        SortKey::Name => 6,
    };
    let header = Row::new(head.iter().enumerate().map(|(i, h)| {
        let st = if i == sorted_col {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        ratatui::text::Text::from(Span::styled(*h, st))
    }));
    let rows = f.caches.iter().map(|c| {
        Row::new(vec![
            c.objs.to_string(),
            c.active.to_string(),
            format!("{}%", c.use_pct()),
            format!("{:.2}K", c.objsize as f64 / 1024.0),
            c.slabs.to_string(),
            format!("{}K", c.kib),
            c.name.clone(),
        ])
    });
    let widths = [
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(11),
        Constraint::Min(10),
    ];
    let title = if f.filter.is_empty() {
        format!(
            " slab caches ({}), sorted by {} ",
            f.caches.len(),
            f.sort.name()
        )
    } else {
        format!(
            " slab caches matching '{}' ({}), sorted by {} ",
            f.filter,
            f.caches.len(),
            f.sort.name()
        )
    };
    fr.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
