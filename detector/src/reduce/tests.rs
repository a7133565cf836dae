use super::*;
use crate::model::Location;
use crate::model::ResourceKind;
use crate::snapshot::HoldSnap;

// ---- snapshot builder ----

fn at(line: u32) -> Location {
    Location::new("src/app.rs", line, 9)
}

#[derive(Default)]
struct B {
    s: Snapshot,
}

impl B {
    fn new() -> Self {
        B::default()
    }

    fn res(mut self, id: u64, kind: ResourceKind, name: &str, releasers: Releasers) -> Self {
        self.s.resources.push(ResourceSnap {
            id,
            kind,
            name: (!name.is_empty()).then(|| name.to_owned()),
            created_at: at(id as u32),
            releasers,
            available: false,
        });
        self
    }

    fn mutex(self, id: u64, name: &str) -> Self {
        self.res(id, ResourceKind::Mutex, name, Releasers::Holders)
    }

    fn available(mut self, id: u64) -> Self {
        self.s
            .resources
            .iter_mut()
            .find(|r| r.id == id)
            .expect("resource")
            .available = true;
        self
    }

    fn thread(mut self, id: u64, name: &str, state: ThreadState) -> Self {
        self.s.threads.push(ThreadSnap {
            id,
            name: (!name.is_empty()).then(|| name.to_owned()),
            state,
            wait: None,
            holds: Vec::new(),
            backtrace: Vec::new(),
        });
        self
    }

    fn running(self, id: u64, name: &str) -> Self {
        self.thread(id, name, ThreadState::Running)
    }

    fn exited(self, id: u64, name: &str) -> Self {
        self.thread(id, name, ThreadState::Exited)
    }

    /// A blocked thread waiting on `resource` with `op`; its wait seq is `seq`.
    fn blocked(mut self, id: u64, name: &str, resource: u64, op: Op, seq: u64) -> Self {
        self = self.thread(id, name, ThreadState::Blocked);
        self.s.threads.last_mut().expect("thread").wait = Some(WaitSnap {
            resource,
            op,
            location: at(100 + id as u32),
            since_ms: 5,
            seq,
        });
        self
    }

    fn holds(mut self, thread: u64, resource: u64, op: Op) -> Self {
        let t = self
            .s
            .threads
            .iter_mut()
            .find(|t| t.id == thread)
            .expect("thread");
        t.holds.push(HoldSnap {
            resource,
            op,
            count: 1,
            location: at(200 + resource as u32),
            backtrace: Vec::new(),
        });
        self
    }

    fn unknown_can_run(mut self) -> Self {
        self.s.unknown_threads_can_run = true;
        self
    }

    fn done(self) -> Snapshot {
        self.s
    }
}

fn edge(thread: u64, waits_for: u64, held_by: u64) -> WaitEdge {
    WaitEdge {
        thread,
        waits_for,
        held_by,
    }
}

/// Two threads, two Mutexes, opposite order (thread 2 holds 10 and waits 11).
fn abba() -> B {
    B::new()
        .mutex(10, "account A")
        .mutex(11, "account B")
        .blocked(2, "worker-a", 11, Op::Lock, 7)
        .holds(2, 10, Op::Lock)
        .blocked(3, "worker-b", 10, Op::Lock, 8)
        .holds(3, 11, Op::Lock)
}

// ---- reduction: what is stuck ----

#[test]
fn opposite_lock_order_is_one_deadlock_with_its_cycle() {
    let f = analyze(&abba().done());
    assert_eq!(f.len(), 1);
    let f = &f[0];
    assert_eq!(f.kind, ReportKind::Deadlock);
    assert_eq!(f.threads, vec![2, 3]);
    assert_eq!(f.cycle, vec![edge(2, 11, 3), edge(3, 10, 2)]);
    assert_eq!(f.key, vec![(2, 7), (3, 8)]);
    assert_eq!(f.closing_thread, 3);
}

#[test]
fn cycle_starts_at_the_smallest_thread_id_whatever_the_snapshot_order() {
    let s = B::new()
        .mutex(10, "a")
        .mutex(11, "b")
        .blocked(9, "", 10, Op::Lock, 1)
        .holds(9, 11, Op::Lock)
        .blocked(4, "", 11, Op::Lock, 2)
        .holds(4, 10, Op::Lock)
        .done();
    let f = &analyze(&s)[0];
    assert_eq!(f.cycle, vec![edge(4, 11, 9), edge(9, 10, 4)]);
    assert_eq!(f.threads, vec![4, 9]);
}

#[test]
fn closing_thread_is_the_cycle_thread_whose_wait_began_last() {
    let s = B::new()
        .mutex(10, "a")
        .mutex(11, "b")
        .blocked(2, "", 11, Op::Lock, 50)
        .holds(2, 10, Op::Lock)
        .blocked(3, "", 10, Op::Lock, 8)
        .holds(3, 11, Op::Lock)
        .done();
    assert_eq!(analyze(&s)[0].closing_thread, 2);
}

#[test]
fn mutex_locked_twice_by_its_owner_is_a_self_deadlock() {
    let s = B::new()
        .mutex(10, "m")
        .blocked(1, "main", 10, Op::Lock, 3)
        .holds(1, 10, Op::Lock)
        .running(2, "other")
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cycle, vec![edge(1, 10, 1)]);
    assert_eq!(f[0].threads, vec![1]);
}

#[test]
fn lock_acquired_twice_deadlocks_when_no_other_thread_can_run() {
    let s = B::new()
        .res(20, ResourceKind::Lock, "config", Releasers::HoldersOrAnyone)
        .blocked(1, "main", 20, Op::Acquire, 1)
        .holds(1, 20, Op::Acquire)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, ReportKind::Deadlock);
    assert_eq!(f[0].cycle, vec![edge(1, 20, 1)]);
}

#[test]
fn lock_reacquired_by_its_holder_is_fine_while_another_thread_can_release_it() {
    // The signal pattern: another thread will release the ownerless Lock.
    let s = B::new()
        .res(20, ResourceKind::Lock, "signal", Releasers::HoldersOrAnyone)
        .blocked(1, "main", 20, Op::Acquire, 1)
        .holds(1, 20, Op::Acquire)
        .running(2, "signaller")
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn a_lock_held_by_no_listed_thread_is_being_handed_to_its_waiter() {
    // A fair unlock hands a Lock straight to a parked waiter: it stays locked, nobody holds
    // it yet, and the waiter has not run. Everyone else being blocked must not make that a
    // stall.
    let s = B::new()
        .res(20, ResourceKind::Lock, "ping", Releasers::HoldersOrAnyone)
        .res(21, ResourceKind::Lock, "pong", Releasers::HoldersOrAnyone)
        .blocked(1, "main", 21, Op::Acquire, 2)
        .holds(1, 21, Op::Acquire)
        .blocked(2, "player", 20, Op::Acquire, 1)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn unknown_threads_count_as_one_thread_that_can_run() {
    let s = B::new()
        .res(20, ResourceKind::Lock, "signal", Releasers::HoldersOrAnyone)
        .blocked(1, "main", 20, Op::Acquire, 1)
        .holds(1, 20, Op::Acquire)
        .unknown_can_run()
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn waiters_on_a_running_holder_are_not_stuck_down_a_chain() {
    // 1 waits for 2, which waits for 3, which runs.
    let s = B::new()
        .mutex(10, "")
        .mutex(11, "")
        .blocked(1, "", 10, Op::Lock, 1)
        .blocked(2, "", 11, Op::Lock, 2)
        .holds(2, 10, Op::Lock)
        .running(3, "")
        .holds(3, 11, Op::Lock)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn threads_in_a_timed_wait_can_run() {
    let s = B::new()
        .mutex(10, "")
        .blocked(1, "", 10, Op::Lock, 1)
        .thread(2, "", ThreadState::TimedWait)
        .holds(2, 10, Op::Lock)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn a_wait_on_an_available_resource_is_never_stuck() {
    let s = abba().available(11).done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn a_held_mutex_with_no_listed_holder_is_held_by_a_running_thread() {
    let s = B::new()
        .mutex(10, "")
        .blocked(1, "", 10, Op::Lock, 1)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn blocked_threads_without_a_known_wait_are_given_the_benefit_of_the_doubt() {
    let s = B::new()
        .thread(1, "no wait", ThreadState::Blocked)
        .blocked(2, "unknown resource", 99, Op::Lock, 1)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn waiting_on_a_lock_whose_owner_exited_is_a_deadlock_chain_to_the_owner() {
    let s = B::new()
        .mutex(10, "db")
        .blocked(1, "worker", 10, Op::Lock, 4)
        .exited(7, "loader")
        .holds(7, 10, Op::Lock)
        .running(2, "")
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, ReportKind::Deadlock);
    assert_eq!(f[0].cycle, vec![edge(1, 10, 7)]);
    assert_eq!(f[0].threads, vec![1, 7]);
    assert_eq!(f[0].key, vec![(1, 4)]);
    assert_eq!(f[0].closing_thread, 1);
}

#[test]
fn threads_blocked_behind_an_exited_owner_join_its_finding() {
    // 2 waits for 11 held by 1; 1 waits for 10 leaked by exited 7.
    let s = B::new()
        .mutex(10, "db")
        .mutex(11, "cache")
        .blocked(1, "", 10, Op::Lock, 4)
        .holds(1, 11, Op::Lock)
        .blocked(2, "", 11, Op::Lock, 5)
        .exited(7, "")
        .holds(7, 10, Op::Lock)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    // The chain up to the exited owner, from the farthest thread it holds up.
    assert_eq!(f[0].cycle, vec![edge(2, 11, 1), edge(1, 10, 7)]);
    assert_eq!(f[0].threads, vec![2, 1, 7]);
    assert_eq!(f[0].key, vec![(1, 4), (2, 5)]);
}

#[test]
fn threads_blocked_behind_a_cycle_join_its_finding_but_do_not_close_it() {
    let s = abba()
        .blocked(4, "late", 10, Op::Lock, 99)
        .blocked(5, "later", 11, Op::Lock, 100)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].threads, vec![2, 3, 4, 5]);
    assert_eq!(f[0].cycle.len(), 2);
    assert_eq!(f[0].key, vec![(2, 7), (3, 8), (4, 99), (5, 100)]);
    assert_eq!(f[0].closing_thread, 3);
}

/// The benchmark's shape (10,000 threads blocked on one lock) both ways: a running holder
/// frees every waiter; a holder stuck in a cycle takes every waiter into its one finding.
#[test]
fn ten_thousand_waiters_on_one_lock_share_their_holder_fate() {
    let waiters = |b: B| (100..10_100).fold(b, |b, id| b.blocked(id, "", 10, Op::Lock, id));
    let free = waiters(
        B::new()
            .mutex(10, "gate")
            .running(1, "holder")
            .holds(1, 10, Op::Lock),
    )
    .done();
    assert!(analyze(&free).is_empty());

    let f = analyze(&waiters(abba()).done());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cycle, vec![edge(2, 11, 3), edge(3, 10, 2)]);
    assert_eq!(f[0].threads.len(), 10_002);
    assert_eq!(f[0].threads[..3], [2, 3, 100]);
    assert_eq!(f[0].key.len(), 10_002);
    assert_eq!(f[0].closing_thread, 3);
}

#[test]
fn an_event_nobody_can_set_is_a_stall() {
    let s = B::new()
        .res(30, ResourceKind::Event, "ready", Releasers::Anyone)
        .blocked(1, "main", 30, Op::Wait, 2)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, ReportKind::Stall);
    assert!(f[0].cycle.is_empty());
    assert_eq!(f[0].threads, vec![1]);
    assert_eq!(f[0].closing_thread, 1);
}

#[test]
fn event_waiters_are_not_stuck_while_any_thread_runs() {
    let s = B::new()
        .res(30, ResourceKind::Event, "ready", Releasers::Anyone)
        .blocked(1, "", 30, Op::Wait, 2)
        .running(2, "")
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn anyone_waiters_are_freed_by_a_thread_that_is_itself_freed_later() {
    // 1 waits on an Event; 2 waits for a Mutex held by a running thread: 2 can run, so it
    // can set the Event.
    let s = B::new()
        .res(30, ResourceKind::Event, "", Releasers::Anyone)
        .mutex(10, "")
        .blocked(1, "", 30, Op::Wait, 1)
        .blocked(2, "", 10, Op::Lock, 2)
        .running(3, "")
        .holds(3, 10, Op::Lock)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn waiters_on_one_event_are_one_stall_and_other_events_are_others() {
    let s = B::new()
        .res(30, ResourceKind::Event, "a", Releasers::Anyone)
        .res(31, ResourceKind::Condition, "b", Releasers::Anyone)
        .blocked(1, "", 30, Op::Wait, 1)
        .blocked(2, "", 31, Op::Wait, 2)
        .blocked(3, "", 30, Op::Wait, 3)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].threads, vec![1, 3]);
    assert_eq!(f[0].closing_thread, 3);
    assert_eq!(f[1].threads, vec![2]);
}

#[test]
fn a_semaphore_held_by_a_stalled_thread_is_part_of_its_stall() {
    let s = B::new()
        .res(30, ResourceKind::Event, "go", Releasers::Anyone)
        .res(
            40,
            ResourceKind::Semaphore,
            "slots",
            Releasers::HoldersOrAnyone,
        )
        .blocked(1, "", 40, Op::Acquire, 1)
        .blocked(2, "", 30, Op::Wait, 2)
        .holds(2, 40, Op::Acquire)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, ReportKind::Stall);
    assert_eq!(f[0].threads, vec![1, 2]);
}

#[test]
fn recursive_read_behind_a_queued_writer_is_a_deadlock() {
    // One RwLock: the reader holds it for read and reads again; the writer queued in between
    // waits for the reader to leave (a write wait follows `Holders`), the second read waits
    // for the queued writer.
    let s = B::new()
        .res(
            50,
            ResourceKind::RwLock,
            "table",
            Releasers::WritersAndQueuedWriters,
        )
        .blocked(1, "reader", 50, Op::Read, 10)
        .holds(1, 50, Op::Read)
        .blocked(2, "writer", 50, Op::Write, 9)
        .running(3, "")
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, ReportKind::Deadlock);
    assert_eq!(f[0].threads, vec![1, 2]);
    assert_eq!(f[0].cycle, vec![edge(1, 50, 2), edge(2, 50, 1)]);
    assert_eq!(f[0].closing_thread, 1);
}

#[test]
fn a_first_read_behind_a_queued_writer_waits_only_as_long_as_the_writer() {
    // The writer waits for a reader that runs: everyone gets through.
    let s = B::new()
        .res(
            50,
            ResourceKind::RwLock,
            "",
            Releasers::WritersAndQueuedWriters,
        )
        .blocked(1, "", 50, Op::Read, 10)
        .blocked(2, "", 50, Op::Write, 9)
        .running(3, "")
        .holds(3, 50, Op::Read)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn a_reader_is_free_once_the_write_holder_can_run() {
    let s = B::new()
        .res(
            50,
            ResourceKind::RwLock,
            "",
            Releasers::WritersAndQueuedWriters,
        )
        .blocked(1, "", 50, Op::Read, 1)
        .running(2, "")
        .holds(2, 50, Op::Write)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn a_read_lock_taken_while_holding_the_write_lock_is_a_self_deadlock() {
    let s = B::new()
        .res(
            50,
            ResourceKind::RwLock,
            "",
            Releasers::WritersAndQueuedWriters,
        )
        .blocked(1, "", 50, Op::Read, 1)
        .holds(1, 50, Op::Write)
        .running(2, "")
        .done();
    let f = analyze(&s);
    assert_eq!(f[0].cycle, vec![edge(1, 50, 1)]);
}

#[test]
fn upgrading_a_read_lock_to_write_is_a_self_deadlock() {
    let s = B::new()
        .res(50, ResourceKind::RwLock, "", Releasers::Holders)
        .blocked(1, "", 50, Op::Write, 1)
        .holds(1, 50, Op::Read)
        .running(2, "")
        .done();
    assert_eq!(analyze(&s)[0].cycle, vec![edge(1, 50, 1)]);
}

#[test]
fn a_write_lock_waits_for_every_reader() {
    // Readers 2 (running) and 3 (exited): 3 never leaves.
    let s = B::new()
        .res(50, ResourceKind::RwLock, "", Releasers::Holders)
        .blocked(1, "", 50, Op::Write, 1)
        .running(2, "")
        .holds(2, 50, Op::Read)
        .exited(3, "")
        .holds(3, 50, Op::Read)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cycle, vec![edge(1, 50, 3)]);
}

#[test]
fn two_threads_joining_each_other_deadlock() {
    let s = B::new()
        .res(61, ResourceKind::Thread, "a", Releasers::Thread(1))
        .res(62, ResourceKind::Thread, "b", Releasers::Thread(2))
        .blocked(1, "a", 62, Op::Join, 1)
        .blocked(2, "b", 61, Op::Join, 2)
        .running(3, "")
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cycle, vec![edge(1, 62, 2), edge(2, 61, 1)]);
}

#[test]
fn joining_an_exited_or_unknown_thread_is_not_stuck() {
    let s = B::new()
        .res(61, ResourceKind::Thread, "", Releasers::Thread(5))
        .res(62, ResourceKind::Thread, "", Releasers::Thread(77))
        .blocked(1, "", 61, Op::Join, 1)
        .blocked(2, "", 62, Op::Join, 2)
        .exited(5, "")
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn pool_workers_all_waiting_on_queued_tasks_deadlock() {
    let s = B::new()
        .res(70, ResourceKind::Task, "t1", Releasers::Workers(vec![1, 2]))
        .res(71, ResourceKind::Task, "t2", Releasers::Workers(vec![1, 2]))
        .blocked(1, "pool-0", 70, Op::Result, 1)
        .blocked(2, "pool-1", 71, Op::Result, 2)
        .running(9, "main")
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, ReportKind::Deadlock);
    assert_eq!(f[0].threads, vec![1, 2]);
    assert_eq!(f[0].cycle, vec![edge(1, 70, 1)]);
}

#[test]
fn a_queued_task_is_not_stuck_while_a_worker_can_run_or_is_yet_unknown() {
    let s = B::new()
        .res(70, ResourceKind::Task, "", Releasers::Workers(vec![1, 2]))
        .res(71, ResourceKind::Task, "", Releasers::Workers(vec![3, 4]))
        .blocked(1, "", 70, Op::Result, 1)
        .running(2, "")
        .blocked(3, "", 71, Op::Result, 2)
        .done();
    assert!(analyze(&s).is_empty());
}

#[test]
fn a_task_whose_workers_all_exited_is_a_stall_not_a_leak() {
    let s = B::new()
        .res(70, ResourceKind::Task, "job", Releasers::Workers(vec![4]))
        .blocked(1, "main", 70, Op::Result, 1)
        .exited(4, "pool-0")
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, ReportKind::Stall);
    assert_eq!(f[0].threads, vec![1]);
    let r = build_report(&s, &f[0], 1, 1);
    assert_eq!(r.summary, "1 thread is stalled: nothing can run Task `job`");
}

#[test]
fn a_semaphore_acquired_again_with_no_permit_left_is_a_self_deadlock() {
    let s = B::new()
        .res(
            40,
            ResourceKind::Semaphore,
            "slots",
            Releasers::HoldersOrAnyone,
        )
        .blocked(1, "main", 40, Op::Acquire, 1)
        .holds(1, 40, Op::Acquire)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "thread `main` is deadlocked on itself: Semaphore `slots` acquired again with no permit left"
    );
}

#[test]
fn an_ownerless_lock_left_acquired_by_an_exited_thread_is_explained_as_not_released() {
    let s = B::new()
        .res(20, ResourceKind::Lock, "gate", Releasers::HoldersOrAnyone)
        .blocked(1, "main", 20, Op::Acquire, 1)
        .exited(2, "opener")
        .holds(2, 20, Op::Acquire)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "thread `main` is deadlocked: Lock `gate` is held by thread `opener`, which has exited"
    );
    assert!(r.help[0]
        .starts_with("`gate` was acquired by thread `opener`, which exited without releasing it"));
}

#[test]
fn the_shortest_cycle_of_a_larger_component_is_reported() {
    // 1 write-waits on readers 2 and 3; 2 waits for 1; 3 waits for 2. Cycles 1-2 and 1-3-2.
    let s = B::new()
        .res(50, ResourceKind::RwLock, "", Releasers::Holders)
        .mutex(10, "")
        .mutex(11, "")
        .blocked(1, "", 50, Op::Write, 1)
        .holds(1, 10, Op::Lock)
        .blocked(2, "", 10, Op::Lock, 2)
        .holds(2, 50, Op::Read)
        .holds(2, 11, Op::Lock)
        .blocked(3, "", 11, Op::Lock, 3)
        .holds(3, 50, Op::Read)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cycle, vec![edge(1, 50, 2), edge(2, 10, 1)]);
    assert_eq!(f[0].threads, vec![1, 2, 3]);
    assert_eq!(f[0].closing_thread, 2);
}

#[test]
fn independent_deadlocks_are_separate_findings_in_key_order() {
    let s = abba()
        .mutex(20, "")
        .mutex(21, "")
        .blocked(1, "", 21, Op::Lock, 1)
        .holds(1, 20, Op::Lock)
        .blocked(8, "", 20, Op::Lock, 2)
        .holds(8, 21, Op::Lock)
        .res(30, ResourceKind::Event, "", Releasers::Anyone)
        .blocked(9, "", 30, Op::Wait, 0)
        .done();
    let f = analyze(&s);
    let kinds: Vec<ReportKind> = f.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ReportKind::Deadlock,
            ReportKind::Deadlock,
            ReportKind::Stall
        ]
    );
    assert_eq!(f[0].threads, vec![1, 8]);
    assert_eq!(f[1].threads, vec![2, 3]);
}

#[test]
fn same_state_gives_the_same_key_and_a_new_wait_changes_it() {
    let k1 = analyze(&abba().done())[0].key.clone();
    let k2 = analyze(&abba().done())[0].key.clone();
    assert_eq!(k1, k2);
    let mut s = abba().done();
    s.threads[0].wait.as_mut().expect("wait").seq = 70;
    assert_ne!(analyze(&s)[0].key, k1);
}

#[test]
fn findings_do_not_depend_on_the_order_of_the_snapshot() {
    let s = abba()
        .blocked(4, "", 10, Op::Lock, 9)
        .res(30, ResourceKind::Event, "", Releasers::Anyone)
        .blocked(6, "", 30, Op::Wait, 1)
        .exited(7, "")
        .done();
    let expected = analyze(&s);
    let mut r = s.clone();
    r.threads.reverse();
    r.resources.reverse();
    assert_eq!(analyze(&r), expected);
    let mut r = s.clone();
    r.threads.rotate_left(2);
    assert_eq!(analyze(&r), expected);
}

#[test]
fn reduction_of_a_long_chain_is_linear_and_finds_nothing_when_its_end_runs() {
    const N: u64 = 20_000;
    let mut b = B::new();
    for i in 0..N {
        b = b.mutex(1_000_000 + i, "");
    }
    for i in 0..N - 1 {
        // Thread i waits for mutex i, held by thread i + 1.
        b = b.blocked(i, "", 1_000_000 + i, Op::Lock, i);
    }
    b = b.running(N - 1, "");
    let mut s = b.done();
    for i in 1..N {
        let r = 1_000_000 + i - 1;
        s.threads[i as usize].holds.push(HoldSnap {
            resource: r,
            op: Op::Lock,
            count: 1,
            location: at(1),
            backtrace: Vec::new(),
        });
    }
    assert!(analyze(&s).is_empty());
    // Close the chain into a cycle: the last thread now waits for mutex 0's holder... thread 0.
    let last = s.threads.last_mut().expect("thread");
    last.state = ThreadState::Blocked;
    last.wait = Some(WaitSnap {
        resource: 1_000_000 + N - 1,
        op: Op::Lock,
        location: at(1),
        since_ms: 0,
        seq: N,
    });
    s.threads[0].holds.push(HoldSnap {
        resource: 1_000_000 + N - 1,
        op: Op::Lock,
        count: 1,
        location: at(1),
        backtrace: Vec::new(),
    });
    let f = analyze(&s);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].cycle.len(), N as usize);
    assert_eq!(f[0].cycle[0].thread, 0);
}

// ---- reports ----

fn report_of(s: &Snapshot) -> Report {
    let f = analyze(s);
    assert_eq!(f.len(), 1, "{f:?}");
    build_report(s, &f[0], 4242, 1_764_103_000_123)
}

#[test]
fn abba_report_names_the_mutexes_and_the_order_to_use() {
    let r = report_of(&abba().done());
    assert_eq!(r.schema, SCHEMA);
    assert_eq!(r.kind, ReportKind::Deadlock);
    assert_eq!(r.summary, "2 threads are deadlocked on 2 Mutexes");
    assert_eq!(
        r.help,
        vec!["acquire `account A` before `account B` on every path"]
    );
    assert_eq!(r.pid, 4242);
    assert_eq!(r.detected_at_ms, 1_764_103_000_123);
    let ids: Vec<u64> = r.threads.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![2, 3]);
    let t = &r.threads[0];
    assert_eq!(t.name.as_deref(), Some("worker-a"));
    assert_eq!(t.state, ThreadState::Blocked);
    let w = t.waiting_for.as_ref().expect("wait");
    assert_eq!((w.resource, w.op, w.since_ms), (11, Op::Lock, 5));
    assert_eq!(t.holds[0].resource, 10);
    // First-reference order: thread 2's wait (11), then its hold (10).
    let res: Vec<u64> = r.resources.iter().map(|r| r.id).collect();
    assert_eq!(res, vec![11, 10]);
    assert_eq!(
        r.cycle,
        vec![
            CycleEdge::Wait {
                thread: 2,
                waits_for: 11,
                held_by: 3
            },
            CycleEdge::Wait {
                thread: 3,
                waits_for: 10,
                held_by: 2
            }
        ]
    );
}

#[test]
fn report_round_trips_through_json() {
    let r = report_of(&abba().done());
    assert_eq!(Report::from_json(&r.to_json()).expect("parses"), r);
}

#[test]
fn lock_taken_twice_is_explained_as_a_non_reentrant_lock() {
    let s = B::new()
        .res(20, ResourceKind::Lock, "config", Releasers::HoldersOrAnyone)
        .blocked(1, "main", 20, Op::Acquire, 1)
        .holds(1, 20, Op::Acquire)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "thread `main` is deadlocked on itself: Lock `config` acquired twice"
    );
    assert_eq!(
        r.help,
        vec![
            "`config` is a Lock, which is not reentrant: use an RLock if the same thread must \
             take it again, or release it before calling code that takes it"
        ]
    );
}

#[test]
fn mutex_locked_twice_suggests_a_reentrant_mutex() {
    let s = B::new()
        .mutex(10, "")
        .blocked(1, "", 10, Op::Lock, 3)
        .holds(1, 10, Op::Lock)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "thread `#1` is deadlocked on itself: `Mutex#10` locked twice"
    );
    assert!(r.help[0]
        .starts_with("`Mutex#10` is a Mutex, which is not reentrant: use a ReentrantMutex"));
}

#[test]
fn rwlock_upgrade_is_explained() {
    let s = B::new()
        .res(50, ResourceKind::RwLock, "cache", Releasers::Holders)
        .blocked(1, "t", 50, Op::Write, 1)
        .holds(1, 50, Op::Read)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "thread `t` is deadlocked on itself: RwLock `cache` write-locked while this thread holds it for read"
    );
    assert!(r.help[0].contains("cannot be upgraded"));
}

#[test]
fn leaked_guard_of_an_exited_owner_is_explained() {
    let s = B::new()
        .mutex(10, "db")
        .blocked(1, "worker", 10, Op::Lock, 4)
        .exited(7, "loader")
        .holds(7, 10, Op::Lock)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "thread `worker` is deadlocked: Mutex `db` is held by thread `loader`, which has exited"
    );
    assert_eq!(
        r.help,
        vec![
            "the guard of `db` was leaked by thread `loader` (it exited while holding it): \
             drop the guard before the thread ends"
        ]
    );
    assert_eq!(r.threads[1].state, ThreadState::Exited);
    assert_eq!(
        r.cycle,
        vec![CycleEdge::Wait {
            thread: 1,
            waits_for: 10,
            held_by: 7
        }]
    );
}

#[test]
fn threads_behind_a_cycle_are_counted_in_the_summary() {
    let s = abba().blocked(4, "late", 10, Op::Lock, 99).done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "2 threads are deadlocked on 2 Mutexes; 1 more thread is blocked behind them"
    );
    assert_eq!(r.threads.len(), 3);
}

#[test]
fn stall_on_an_event_says_nothing_can_set_it() {
    let s = B::new()
        .res(30, ResourceKind::Event, "ready", Releasers::Anyone)
        .blocked(1, "main", 30, Op::Wait, 2)
        .done();
    let r = report_of(&s);
    assert_eq!(r.kind, ReportKind::Stall);
    assert_eq!(
        r.summary,
        "1 thread is stalled: nothing can set Event `ready`"
    );
    assert!(r.help[0].starts_with("nothing left running can set Event `ready`"));
    assert!(r.cycle.is_empty());
}

#[test]
fn stall_names_only_the_root_waits() {
    let s = B::new()
        .res(30, ResourceKind::Condition, "changed", Releasers::Anyone)
        .res(
            40,
            ResourceKind::Semaphore,
            "slots",
            Releasers::HoldersOrAnyone,
        )
        .blocked(1, "", 40, Op::Acquire, 1)
        .blocked(2, "", 30, Op::Wait, 2)
        .holds(2, 40, Op::Acquire)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "2 threads are stalled: nothing can notify Condition `changed`"
    );
}

#[test]
fn stall_with_several_root_waits_lists_them_all() {
    let s = B::new()
        .res(30, ResourceKind::Event, "go", Releasers::Anyone)
        .res(31, ResourceKind::Barrier, "", Releasers::Anyone)
        .res(
            40,
            ResourceKind::Semaphore,
            "slots",
            Releasers::HoldersOrAnyone,
        )
        // 1 holds the semaphore and waits on the Event; 2 waits on the semaphore and the
        // barrier is waited on by 3, who holds nothing: 1 and 2 are one group, 3 another.
        .blocked(1, "", 30, Op::Wait, 1)
        .holds(1, 40, Op::Acquire)
        .blocked(2, "", 40, Op::Acquire, 2)
        .blocked(3, "", 31, Op::Barrier, 3)
        .done();
    let f = analyze(&s);
    assert_eq!(f.len(), 2);
    let r = build_report(&s, &f[1], 1, 1);
    assert_eq!(
        r.summary,
        "1 thread is stalled: nothing can arrive at `Barrier#31`"
    );
    // One group waiting on two roots at once.
    let s = B::new()
        .res(30, ResourceKind::Event, "go", Releasers::Anyone)
        .res(31, ResourceKind::Condition, "cv", Releasers::Anyone)
        .res(
            40,
            ResourceKind::Semaphore,
            "slots",
            Releasers::HoldersOrAnyone,
        )
        .blocked(1, "", 30, Op::Wait, 1)
        .holds(1, 40, Op::Acquire)
        .blocked(2, "", 31, Op::Wait, 2)
        .holds(2, 40, Op::Acquire)
        .blocked(3, "", 40, Op::Acquire, 3)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "3 threads are stalled: nothing can set Event `go` or notify Condition `cv`"
    );
}

#[test]
fn join_cycle_is_explained() {
    let s = B::new()
        .res(61, ResourceKind::Thread, "a", Releasers::Thread(1))
        .res(62, ResourceKind::Thread, "b", Releasers::Thread(2))
        .blocked(1, "a", 62, Op::Join, 1)
        .blocked(2, "b", 61, Op::Join, 2)
        .done();
    let r = report_of(&s);
    assert_eq!(r.summary, "2 threads are deadlocked joining each other");
    assert!(r.help[0].starts_with("thread `a` joins thread `b`, which can never finish"));
}

#[test]
fn recursive_read_is_explained() {
    let s = B::new()
        .res(
            50,
            ResourceKind::RwLock,
            "table",
            Releasers::WritersAndQueuedWriters,
        )
        .blocked(1, "reader", 50, Op::Read, 10)
        .holds(1, 50, Op::Read)
        .blocked(2, "writer", 50, Op::Write, 9)
        .done();
    let r = report_of(&s);
    assert_eq!(r.summary, "2 threads are deadlocked on 1 RwLock");
    assert!(
        r.help
            .iter()
            .any(|h| h
                .starts_with("thread `reader` read-locks `table` again while already holding it")),
        "{:?}",
        r.help
    );
}

#[test]
fn pool_knot_is_explained() {
    let s = B::new()
        .res(70, ResourceKind::Task, "t1", Releasers::Workers(vec![1, 2]))
        .res(71, ResourceKind::Task, "t2", Releasers::Workers(vec![1, 2]))
        .blocked(1, "pool-0", 70, Op::Result, 1)
        .blocked(2, "pool-1", 71, Op::Result, 2)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "2 pool workers are deadlocked: each waits for a task that only a free worker could run"
    );
    assert!(r.help[0].contains("same pool"));
}

#[test]
fn three_lock_cycle_help_gives_one_order() {
    let s = B::new()
        .mutex(10, "a")
        .mutex(11, "b")
        .res(12, ResourceKind::RwLock, "c", Releasers::Holders)
        .blocked(1, "", 11, Op::Lock, 1)
        .holds(1, 10, Op::Lock)
        .blocked(2, "", 12, Op::Write, 2)
        .holds(2, 11, Op::Lock)
        .blocked(3, "", 10, Op::Lock, 3)
        .holds(3, 12, Op::Write)
        .done();
    let r = report_of(&s);
    assert_eq!(
        r.summary,
        "3 threads are deadlocked on 2 Mutexes and 1 RwLock"
    );
    assert_eq!(
        r.help,
        vec!["acquire `a`, `b` and `c` in one order on every path: `a` before `b` before `c`"]
    );
}

#[test]
fn long_wait_report_shows_the_holder_and_what_it_is_doing() {
    let mut s = B::new()
        .mutex(10, "db")
        .mutex(11, "cache")
        .blocked(1, "worker", 10, Op::Lock, 1)
        .blocked(2, "loader", 11, Op::Lock, 2)
        .holds(2, 10, Op::Lock)
        .running(3, "")
        .holds(3, 11, Op::Lock)
        .done();
    s.threads[0].wait.as_mut().expect("wait").since_ms = 1200;
    let r = long_wait_report(&s, 1, 9, 10);
    assert_eq!(r.kind, ReportKind::LongWait);
    assert_eq!(
        r.summary,
        "thread `worker` has waited 1200 ms for Mutex `db`"
    );
    let ids: Vec<u64> = r.threads.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(
        r.threads[1].waiting_for.as_ref().map(|w| w.resource),
        Some(11)
    );
    assert_eq!(
        r.help,
        vec![
            "thread `loader` holds `db` (acquired at src/app.rs:210:9) and is itself waiting \
             for Mutex `cache` at src/app.rs:102:9"
        ]
    );
    let res: Vec<u64> = r.resources.iter().map(|r| r.id).collect();
    assert_eq!(res, vec![10, 11]);
    assert!(r.cycle.is_empty());
}

#[test]
fn long_wait_on_a_join_lists_the_joined_thread() {
    let s = B::new()
        .res(61, ResourceKind::Thread, "child", Releasers::Thread(5))
        .blocked(1, "parent", 61, Op::Join, 1)
        .running(5, "child")
        .done();
    let r = long_wait_report(&s, 1, 9, 10);
    let ids: Vec<u64> = r.threads.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![1, 5]);
    assert_eq!(
        r.help,
        vec!["thread `child` must end this wait and is running"]
    );
}

#[test]
fn long_wait_for_an_unknown_thread_still_makes_a_report() {
    let r = long_wait_report(&Snapshot::default(), 3, 1, 1);
    assert_eq!(r.summary, "thread `#3` has waited too long");
    assert!(r.threads.is_empty());
}
