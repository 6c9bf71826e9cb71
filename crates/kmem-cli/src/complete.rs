//! Tab completion for the interactive shell: function and command names, GFP flags, and
//! /proc paths after `cat`.

#![forbid(unsafe_code)]

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::shell::{builtins, COMMANDS};

/// GFP names offered for completion (include/linux/gfp_types.h); every one parses with
/// `GfpFlags::parse` (checked by a test).
pub const GFP_NAMES: &[&str] = &[
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "GFP_KERNEL_ACCOUNT",
    "GFP_NOWAIT",
    "GFP_NOIO",
    "GFP_NOFS",
    "GFP_USER",
    "GFP_DMA",
    "GFP_DMA32",
    "GFP_HIGHUSER",
    "GFP_HIGHUSER_MOVABLE",
    "GFP_TRANSHUGE",
    "GFP_TRANSHUGE_LIGHT",
    "__GFP_DMA",
    "__GFP_HIGHMEM",
    "__GFP_DMA32",
    "__GFP_MOVABLE",
    "__GFP_RECLAIMABLE",
    "__GFP_HIGH",
    "__GFP_IO",
    "__GFP_FS",
    "__GFP_ZERO",
    "__GFP_DIRECT_RECLAIM",
    "__GFP_KSWAPD_RECLAIM",
    "__GFP_RECLAIM",
    "__GFP_WRITE",
    "__GFP_NOWARN",
    "__GFP_RETRY_MAYFAIL",
    "__GFP_NOFAIL",
    "__GFP_NORETRY",
    "__GFP_MEMALLOC",
    "__GFP_COMP",
    "__GFP_NOMEMALLOC",
    "__GFP_HARDWALL",
    "__GFP_THISNODE",
    "__GFP_ACCOUNT",
];

/// Slab flag names offered for completion (include/linux/slab.h); every one parses with
/// `SlabFlags::parse` (checked by a test).
pub const SLAB_NAMES: &[&str] = &[
    "SLAB_CONSISTENCY_CHECKS",
    "SLAB_RED_ZONE",
    "SLAB_POISON",
    "SLAB_KMALLOC",
    "SLAB_HWCACHE_ALIGN",
    "SLAB_CACHE_DMA",
    "SLAB_CACHE_DMA32",
    "SLAB_STORE_USER",
    "SLAB_RECLAIM_ACCOUNT",
    "SLAB_PANIC",
    "SLAB_TYPESAFE_BY_RCU",
    "SLAB_TRACE",
    "SLAB_NOLEAKTRACE",
    "SLAB_NO_MERGE",
    "SLAB_FAILSLAB",
    "SLAB_ACCOUNT",
    "SLAB_NO_USER_FLAGS",
];

/// The interactive shell's rustyline helper; `vars` holds the session's variable names.
pub struct ShellHelper {
    /// Variable names, refreshed by the shell after each line.
    pub vars: Vec<String>,
}

/// Completions for the word ending at `pos` in `line` (function, command, flag and variable
/// names; /proc paths after `cat`): the start of the word and the candidates.
pub fn complete_with(line: &str, pos: usize, vars: &[String]) -> (usize, Vec<String>) {
    let before = &line[..pos];
    // A path after `cat`.
    if let Some(rest) = before.trim_start().strip_prefix("cat ") {
        let word_start = pos - rest.len() + rest.rfind(' ').map_or(0, |i| i + 1);
        let word = &line[word_start..pos];
        let c = kmem::proc::PROC_FILES
            .iter()
            .chain(std::iter::once(&"/sys/kernel/debug/kmemleak"))
            .filter(|p| p.starts_with(word))
            .map(|p| p.to_string())
            .collect();
        return (word_start, c);
    }
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
        .last()
        .map_or(pos, |(i, _)| i);
    let word = &line[start..pos];
    if word.is_empty() {
        return (pos, Vec::new());
    }
    let mut c: Vec<String> = builtins::all()
        .map(|b| b.name)
        .chain(COMMANDS.iter().map(|c| c.name))
        .chain(GFP_NAMES.iter().copied())
        .chain(SLAB_NAMES.iter().copied())
        .chain(builtins::consts::names().map(|n| -> &str { n }))
        .chain(["if", "else", "while", "for", "break", "continue"])
        .chain(vars.iter().map(String::as_str))
        .chain(["NULL"])
        .filter(|n| n.starts_with(word))
        .map(str::to_string)
        .collect();
    c.sort();
    c.dedup();
    (start, c)
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, c) = complete_with(line, pos, &self.vars);
        Ok((
            start,
            c.into_iter()
                .map(|s| Pair {
                    display: s.clone(),
                    replacement: s,
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfp_names_parse() {
        for n in GFP_NAMES {
            assert!(kmem::GfpFlags::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn slab_names_parse() {
        for n in SLAB_NAMES {
            assert!(kmem::slab::common::SlabFlags::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn completes_variables() {
        let vars = ["page".to_string(), "ptr".to_string()];
        let (s, c) = complete_with("free_pages(pa", 13, &vars);
        assert_eq!(
            (s, c),
            (
                11,
                vec![
                    "page".to_string(),
                    "page_address".to_string(),
                    "page_ref_count".to_string(),
                    "page_to_nid".to_string(),
                    "page_to_pfn".to_string()
                ]
            )
        );
    }

    #[test]
    fn completes_names_and_paths() {
        let (s, c) = complete_with("p = alloc_pa", 12, &[]);
        assert_eq!(
            (s, c),
            (
                4,
                vec![
                    "alloc_page".to_string(),
                    "alloc_pages".to_string(),
                    "alloc_pages_exact".to_string(),
                    "alloc_pages_node".to_string()
                ]
            )
        );
        let (_, c) = complete_with("x = __GFP_ZE", 12, &[]);
        assert_eq!(c, ["__GFP_ZERO"]);
        let (s, c) = complete_with("cat /proc/bud", 13, &[]);
        assert_eq!((s, c), (4, vec!["/proc/buddyinfo".to_string()]));
        let (_, c) = complete_with("cat /proc/buddyinfo /proc/mem", 29, &[]);
        assert_eq!(c, ["/proc/meminfo"]);
        assert!(complete_with("x = ", 4, &[]).1.is_empty());
    }
}
