//! The summaries and help lines of findings: what a deadlock, a stall or a long wait is called
//! and what to change, worded over the snapshot it was found in. The algorithms in
//! [`crate::reduce`] decide what was found; this decides how it reads.

use std::collections::HashSet;

use crate::model::{resource_label, resource_phrase, thread_label, Op, ResourceKind, ThreadState};
use crate::reduce::{Finding, WaitEdge};
use crate::snapshot::{Releasers, Snapshot, ThreadSnap, WaitSnap};

/// "1 thread is" / "3 threads are".
fn threads_are(n: usize) -> String {
    if n == 1 {
        "1 thread is".to_owned()
    } else {
        format!("{n} threads are")
    }
}

/// "`a`", "`a` and `b`", "`a`, `b` and `c`".
pub(crate) fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "2 Mutexes", "1 Mutex and 1 RwLock", counted in first-appearance order.
fn count_kinds(kinds: &[ResourceKind]) -> String {
    let mut counts: Vec<(ResourceKind, usize)> = Vec::new();
    for &k in kinds {
        match counts.iter_mut().find(|(c, _)| *c == k) {
            Some((_, n)) => *n += 1,
            None => counts.push((k, 1)),
        }
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(k, n)| {
            if n == 1 {
                format!("1 {k}")
            } else {
                format!("{n} {}", k.plural())
            }
        })
        .collect();
    join_and(&parts)
}

/// Lock-like kinds: those for which "take them in one order" is the fix of a cycle.
fn is_lock_kind(k: ResourceKind) -> bool {
    matches!(
        k,
        ResourceKind::Mutex
            | ResourceKind::RwLock
            | ResourceKind::ReentrantMutex
            | ResourceKind::Lock
            | ResourceKind::RLock
            | ResourceKind::Semaphore
            | ResourceKind::BoundedSemaphore
    )
}

/// Summary and help wording over one snapshot.
pub(crate) struct FindingText<'a> {
    s: &'a Snapshot,
}

impl<'a> FindingText<'a> {
    /// The wording of findings in `s`.
    pub(crate) fn new(s: &'a Snapshot) -> Self {
        FindingText { s }
    }
}

impl FindingText<'_> {
    /// The summary of a long wait of `thread` (in `wait`, when it is still waiting).
    pub(crate) fn long_wait_summary(&self, thread: u64, wait: Option<&WaitSnap>) -> String {
        let who = self.thread(thread);
        match wait {
            Some(w) => format!(
                "thread `{who}` has waited {} ms for {}",
                w.since_ms,
                self.phrase(w.resource)
            ),
            None => format!("thread `{who}` has waited too long"),
        }
    }

    /// The help line of a long wait `w` about `h`, a thread that can end it: what it holds and
    /// what it is doing.
    pub(crate) fn long_wait_help(&self, w: &WaitSnap, h: &ThreadSnap) -> String {
        let text = self;
        let name = thread_label(h.name.as_deref(), h.id);
        let held = h.holds.iter().find(|x| x.resource == w.resource);
        let what = match held {
            Some(x) => format!(
                "thread `{name}` holds `{}` (acquired at {})",
                text.label(w.resource),
                x.location
            ),
            None => format!("thread `{name}` must end this wait"),
        };
        let doing = match (&h.state, &h.wait) {
            (ThreadState::Blocked, Some(hw)) => format!(
                "is itself waiting for {} at {}",
                text.phrase(hw.resource),
                hw.location
            ),
            (ThreadState::TimedWait, Some(hw)) => format!(
                "is in a timed wait for {} at {}",
                text.phrase(hw.resource),
                hw.location
            ),
            (ThreadState::Exited, _) => "has exited".to_owned(),
            _ => "is running".to_owned(),
        };
        format!("{what} and {doing}")
    }

    fn kind(&self, r: u64) -> Option<ResourceKind> {
        self.s.resource(r).map(|r| r.kind)
    }

    fn label(&self, r: u64) -> String {
        match self.s.resource(r) {
            Some(r) => resource_label(r.kind, r.name.as_deref(), r.id),
            None => format!("#{r}"),
        }
    }

    fn phrase(&self, r: u64) -> String {
        match self.s.resource(r) {
            Some(r) => resource_phrase(r.kind, r.name.as_deref(), r.id),
            None => format!("`#{r}`"),
        }
    }

    fn thread(&self, t: u64) -> String {
        let name = self.s.thread(t).and_then(|t| t.name.as_deref());
        thread_label(name, t)
    }

    fn hold(&self, t: u64, r: u64) -> Option<&crate::snapshot::HoldSnap> {
        self.s.thread(t)?.holds.iter().find(|h| h.resource == r)
    }

    fn wait(&self, t: u64) -> Option<&WaitSnap> {
        self.s.thread(t)?.wait.as_ref()
    }

    fn is_exited(&self, t: u64) -> bool {
        self.s
            .thread(t)
            .is_some_and(|t| t.state == ThreadState::Exited)
    }

    /// The summary and help lines of a deadlock.
    pub(crate) fn deadlock(&self, f: &Finding) -> (String, Vec<String>) {
        let mut help = Vec::new();
        let blocked = f.key.len();
        let cycle_threads: Vec<u64> = f.cycle.iter().map(|e| e.thread).collect();
        let behind = behind_suffix(
            blocked.saturating_sub(cycle_threads.len()),
            cycle_threads.len(),
        );
        let Some(last) = f.cycle.last() else {
            return (format!("{} deadlocked", threads_are(blocked)), help);
        };

        let chain_to_exited = self.is_exited(last.held_by);
        let self_loop = f.cycle.len() == 1 && last.thread == last.held_by;
        let summary = if chain_to_exited {
            let owner = self.thread(last.held_by);
            let subject = if blocked == 1 {
                format!("thread `{}` is", self.thread(last.thread))
            } else {
                threads_are(blocked)
            };
            format!(
                "{subject} deadlocked: {} is held by thread `{owner}`, which has exited",
                self.phrase(last.waits_for)
            )
        } else if self_loop {
            let (text, covered) = self.self_deadlock(f, last, &mut help);
            text + &behind_suffix(blocked.saturating_sub(covered), covered)
        } else if f
            .cycle
            .iter()
            .all(|e| self.kind(e.waits_for) == Some(ResourceKind::Thread))
        {
            format!(
                "{} deadlocked joining each other{behind}",
                threads_are(cycle_threads.len())
            )
        } else {
            let mut resources: Vec<u64> = Vec::new();
            for e in &f.cycle {
                if !resources.contains(&e.waits_for) {
                    resources.push(e.waits_for);
                }
            }
            let kinds: Vec<ResourceKind> = resources.iter().filter_map(|&r| self.kind(r)).collect();
            format!(
                "{} deadlocked on {}{behind}",
                threads_are(cycle_threads.len()),
                count_kinds(&kinds)
            )
        };

        if !chain_to_exited && !self_loop {
            self.cycle_help(f, &mut help);
        }
        // Leaked guards: every exited owner that a thread of the finding waits on.
        for e in f.cycle.iter().filter(|e| self.is_exited(e.held_by)) {
            help.push(self.leaked_help(e.waits_for, e.held_by));
        }
        for &t in f.threads.iter().filter(|&&t| self.is_exited(t)) {
            if f.cycle.iter().any(|e| e.held_by == t) {
                continue;
            }
            let held = f
                .threads
                .iter()
                .filter_map(|&w| self.wait(w))
                .find(|w| self.hold(t, w.resource).is_some());
            if let Some(w) = held {
                help.push(self.leaked_help(w.resource, t));
            }
        }
        dedup_in_order(&mut help);
        (summary, help)
    }

    fn leaked_help(&self, r: u64, owner: u64) -> String {
        let (label, owner) = (self.label(r), self.thread(owner));
        match self.kind(r) {
            Some(ResourceKind::Lock | ResourceKind::Semaphore | ResourceKind::BoundedSemaphore) => {
                format!(
                    "`{label}` was acquired by thread `{owner}`, which exited without releasing \
                     it: release it on every path before the thread ends (its guard does)"
                )
            }
            _ => format!(
                "the guard of `{label}` was leaked by thread `{owner}` (it exited while holding \
                 it): drop the guard before the thread ends"
            ),
        }
    }

    /// The summary of a one-thread cycle and how many blocked threads it accounts for,
    /// pushing its help.
    fn self_deadlock(&self, f: &Finding, e: &WaitEdge, help: &mut Vec<String>) -> (String, usize) {
        let t = self.thread(e.thread);
        let r = e.waits_for;
        let (label, phrase) = (self.label(r), self.phrase(r));
        let kind = self.kind(r);
        let wait_op = self.wait(e.thread).map(|w| w.op);
        let hold_op = self.hold(e.thread, r).map(|h| h.op);
        if kind == Some(ResourceKind::Task) {
            help.push(
                "do not wait for a task's result from inside a task of the same pool (every \
                 worker can end up waiting), or give the pool more workers"
                    .to_owned(),
            );
            let workers = f
                .threads
                .iter()
                .filter(|&&w| {
                    self.wait(w)
                        .is_some_and(|w| self.kind(w.resource) == Some(ResourceKind::Task))
                })
                .count();
            let text = if workers > 1 {
                format!(
                    "{workers} pool workers are deadlocked: each waits for a task that only a \
                     free worker could run"
                )
            } else {
                format!(
                    "thread `{t}` is deadlocked on itself: {phrase} can only run on a pool \
                     worker, and every worker is blocked"
                )
            };
            return (text, workers.max(1));
        }
        let what = match (kind, hold_op, wait_op) {
            (Some(ResourceKind::RwLock), Some(Op::Write), Some(Op::Read)) => {
                help.push(format!(
                    "`{label}` is an RwLock, which is not reentrant: drop the write guard before \
                     reading it again, or read through the write guard you hold"
                ));
                "read-locked while this thread holds it for write"
            }
            (Some(ResourceKind::RwLock), Some(Op::Read), Some(Op::Write)) => {
                help.push(format!(
                    "a read guard of `{label}` cannot be upgraded: drop it before calling \
                     write(), and re-check what you read once you hold the write lock"
                ));
                "write-locked while this thread holds it for read"
            }
            (Some(ResourceKind::Lock), _, _) => {
                help.push(format!(
                    "`{label}` is a Lock, which is not reentrant: use an RLock if the same thread \
                     must take it again, or release it before calling code that takes it"
                ));
                "acquired twice"
            }
            (Some(ResourceKind::Mutex), _, _) => {
                help.push(format!(
                    "`{label}` is a Mutex, which is not reentrant: use a ReentrantMutex if the \
                     same thread must lock it again, or drop the guard before calling code that \
                     locks it"
                ));
                "locked twice"
            }
            (Some(ResourceKind::RwLock), _, _) => {
                help.push(format!(
                    "`{label}` is an RwLock, which is not reentrant: drop the guard before \
                     locking it again"
                ));
                "write-locked twice"
            }
            (Some(ResourceKind::Semaphore | ResourceKind::BoundedSemaphore), _, _) => {
                help.push(format!(
                    "thread `{t}` already holds a permit of `{label}` and no other thread left \
                     running can release one: release it before acquiring again, or create the \
                     semaphore with more permits"
                ));
                "acquired again with no permit left"
            }
            (Some(ResourceKind::Thread), _, _) => {
                help.push("a thread cannot join itself".to_owned());
                "joined from itself"
            }
            _ => {
                help.push(format!(
                    "thread `{t}` waits for `{label}`, which only it could release: release it \
                     first"
                ));
                "waited on while held"
            }
        };
        (
            format!("thread `{t}` is deadlocked on itself: {phrase} {what}"),
            1,
        )
    }

    /// Help for a cycle of two or more threads.
    fn cycle_help(&self, f: &Finding, help: &mut Vec<String>) {
        for e in &f.cycle {
            let Some(w) = self.wait(e.thread) else {
                continue;
            };
            let t = self.thread(e.thread);
            let label = self.label(e.waits_for);
            match self.kind(e.waits_for) {
                Some(ResourceKind::RwLock)
                    if w.op == Op::Read
                        && self
                            .hold(e.thread, e.waits_for)
                            .is_some_and(|h| h.op == Op::Read) =>
                {
                    help.push(format!(
                        "thread `{t}` read-locks `{label}` again while already holding it, and a \
                         writer queued in between: the lock is task-fair, so the second read \
                         waits for the writer, which waits for the first; take the read lock \
                         once and pass the guard down"
                    ));
                }
                Some(ResourceKind::Thread) => {
                    help.push(format!(
                        "thread `{t}` joins thread `{}`, which can never finish because it waits \
                         for `{t}`: join a thread only from one it does not wait for",
                        self.thread(e.held_by)
                    ));
                }
                Some(ResourceKind::Task) => {
                    help.push(
                        "do not wait for a task's result from inside a task of the same pool \
                         (every worker can end up waiting), or give the pool more workers"
                            .to_owned(),
                    );
                }
                _ => {}
            }
        }
        // Lock order: two or more distinct locks in the cycle, taken in one order everywhere.
        let mut locks: Vec<u64> = f
            .cycle
            .iter()
            .map(|e| e.waits_for)
            .filter(|&r| self.kind(r).is_some_and(is_lock_kind))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        let labels: Vec<String> = locks
            .iter()
            .map(|&r| format!("`{}`", self.label(r)))
            .collect();
        help.extend(order_help(&labels));
    }

    /// The summary and help lines of a stall.
    pub(crate) fn stall(&self, f: &Finding) -> (String, Vec<String>) {
        let blocked = f.key.len();
        // Root waits: resources none of the finding's threads could release. Waits on those
        // are why the whole group is stuck; the others are blocked behind them.
        let mut roots: Vec<u64> = Vec::new();
        let mut waited: Vec<u64> = Vec::new();
        for &t in &f.threads {
            let Some(w) = self.wait(t) else { continue };
            if waited.contains(&w.resource) {
                continue;
            }
            waited.push(w.resource);
            let explained = match self.s.resource(w.resource).map(|r| &r.releasers) {
                Some(Releasers::Thread(j)) => f.threads.contains(j),
                Some(Releasers::Workers(ws)) => ws.iter().any(|j| f.threads.contains(j)),
                Some(Releasers::Anyone) => false,
                _ => f
                    .threads
                    .iter()
                    .any(|&h| h != t && self.hold(h, w.resource).is_some()),
            };
            if !explained {
                roots.push(w.resource);
            }
        }
        if roots.is_empty() {
            roots = waited;
        }
        let mut verbs = Vec::new();
        let mut help = Vec::new();
        for &r in &roots {
            let phrase = self.phrase(r);
            let (verb, fix) = match self.kind(r) {
                Some(ResourceKind::Event) => (
                    "set",
                    "check that the code that sets it runs on every path and is not itself \
                     waiting, or wait with a timeout",
                ),
                Some(ResourceKind::Condition | ResourceKind::Condvar) => (
                    "notify",
                    "notify after every change the waiters check, or wait with a timeout",
                ),
                Some(ResourceKind::Barrier) => (
                    "arrive at",
                    "check its party count against the threads that call wait(), or wait with \
                     a timeout",
                ),
                Some(ResourceKind::Task) => (
                    "run",
                    "keep a pool worker free for it, or do not wait for it from the pool",
                ),
                Some(ResourceKind::Thread) => (
                    "finish",
                    "make sure the joined thread is not waiting for its joiner",
                ),
                _ => (
                    "release",
                    "release it on every path (its guard does), or acquire with a timeout",
                ),
            };
            verbs.push(format!("{verb} {phrase}"));
            help.push(format!("nothing left running can {verb} {phrase}: {fix}"));
        }
        let summary = format!(
            "{} stalled: nothing can {}",
            threads_are(blocked),
            join_or(&verbs)
        );
        (summary, help)
    }
}

/// "; 2 more threads are blocked behind them" (or "behind it", behind a single thread), or
/// nothing.
fn behind_suffix(extra: usize, in_front: usize) -> String {
    let pronoun = if in_front == 1 { "it" } else { "them" };
    match extra {
        0 => String::new(),
        1 => format!("; 1 more thread is blocked behind {pronoun}"),
        n => format!("; {n} more threads are blocked behind {pronoun}"),
    }
}

/// The order to adopt for locks taken in opposite orders, labels in that order: "acquire `A`
/// before `B` on every path" (nothing for fewer than two locks).
pub(crate) fn order_help(labels: &[String]) -> Option<String> {
    match labels.len() {
        0 | 1 => None,
        2 => Some(format!(
            "acquire {} before {} on every path",
            labels[0], labels[1]
        )),
        _ => Some(format!(
            "acquire {} in one order on every path: {}",
            join_and(labels),
            labels.join(" before ")
        )),
    }
}

/// "a", "a or b", "a, b or c".
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn dedup_in_order(v: &mut Vec<String>) {
    let mut seen = HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}
