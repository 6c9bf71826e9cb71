//! SLOB (mm/slob.c of Linux 6.3): placeholder while it is written; boots SLUB.

pub(crate) use crate::slab::slub::Slub as Slob;
