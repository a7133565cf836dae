//! The SPEC §2 names and signatures of the primitives, written out with their types so that a
//! change to any of them fails to compile here. The calls also run, single-threaded.

use lockwatch::thread::{self, JoinHandle};
use lockwatch::{
    Condvar, Lock, LockGuard, Mutex, MutexGuard, RLock, RLockGuard, ReentrantMutex,
    ReentrantMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, SyncError, WaitTimeoutResult,
};
use std::sync::Arc;
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(1);

#[test]
fn rust_style_primitives_have_the_parking_lot_surface() {
    let name: Arc<str> = Arc::from("named");
    let mut m: Mutex<u32> = Mutex::new(1);
    let _named: Mutex<u32> = Mutex::named("m", 2);
    let _named_arc: Mutex<u32> = Mutex::named(name.clone(), 3);
    {
        let g: MutexGuard<'_, u32> = m.lock();
        let none: Option<MutexGuard<'_, u32>> = m.try_lock();
        assert!(none.is_none());
        drop(g);
        let timed: Option<MutexGuard<'_, u32>> = m.try_lock_for(SHORT);
        assert!(timed.is_some());
    }
    *m.get_mut() += 1;
    let inner: u32 = m.into_inner();
    assert_eq!(inner, 2);

    let rw: RwLock<u32> = RwLock::named("rw", 0);
    {
        let r: RwLockReadGuard<'_, u32> = rw.read();
        let r2: Option<RwLockReadGuard<'_, u32>> = rw.try_read();
        let w: Option<RwLockWriteGuard<'_, u32>> = rw.try_write();
        assert!(r2.is_some() && w.is_none());
        let _ = (r, r2);
    }
    {
        let w: RwLockWriteGuard<'_, u32> = rw.write();
        drop(w);
        let r: Option<RwLockReadGuard<'_, u32>> = rw.try_read_for(SHORT);
        drop(r);
        let w: Option<RwLockWriteGuard<'_, u32>> = rw.try_write_for(SHORT);
        assert!(w.is_some());
    }

    let re: ReentrantMutex<u32> = ReentrantMutex::named("re", 7);
    let outer: ReentrantMutexGuard<'_, u32> = re.lock();
    let inner: ReentrantMutexGuard<'_, u32> = re.lock();
    assert_eq!(*inner + *outer, 14);
    drop((inner, outer));

    let cv: Condvar = Condvar::new();
    let m = Mutex::new(false);
    let mut g = m.lock();
    let r: WaitTimeoutResult = cv.wait_for(&mut g, SHORT);
    assert!(r.timed_out());
    *g = true;
    cv.wait_while(&mut g, |ready| !*ready);
    let woke: bool = cv.notify_one();
    let count: usize = cv.notify_all();
    assert!(!woke);
    assert_eq!(count, 0);
}

#[test]
fn python_style_primitives_have_cpython_semantics_as_values() {
    let lock: Lock = Lock::named("lock");
    lock.acquire();
    let again: bool = lock.try_acquire();
    assert!(!again);
    let timed: bool = lock.acquire_timeout(SHORT);
    assert!(!timed);
    let locked: bool = lock.locked();
    assert!(locked);
    let released: Result<(), SyncError> = lock.release();
    assert_eq!(released, Ok(()));
    assert_eq!(lock.release(), Err(SyncError::NotLocked));
    let fresh = Lock::new();
    let guard: LockGuard<'_> = fresh.lock();
    drop(guard);

    let rlock: RLock = RLock::named("rlock");
    rlock.acquire();
    assert!(rlock.try_acquire());
    assert!(rlock.acquire_timeout(SHORT));
    for _ in 0..3 {
        rlock.release().unwrap();
    }
    assert_eq!(rlock.release(), Err(SyncError::NotOwner));
    let fresh = RLock::new();
    let guard: RLockGuard<'_> = fresh.lock();
    drop(guard);
}

#[test]
fn threads_spawn_name_join_and_join_timeout() {
    let h: JoinHandle<u32> = thread::spawn(|| 5);
    let r: std::thread::Result<u32> = h.join();
    assert_eq!(r.unwrap(), 5);
    let built: std::io::Result<JoinHandle<&'static str>> =
        thread::Builder::new().name("named".into()).spawn(|| "done");
    let h = built.unwrap();
    assert_eq!(h.thread().name(), Some("named"));
    let joined: Result<std::thread::Result<&str>, JoinHandle<&str>> =
        h.join_timeout(Duration::from_secs(10));
    assert_eq!(joined.ok().unwrap().unwrap(), "done");
    let h = thread::spawn(|| ());
    while !h.is_finished() {
        std::thread::yield_now();
    }
    h.join().unwrap();
}

#[cfg(feature = "detect")]
#[test]
fn runtime_api_names() {
    use lockwatch::{Config, Report, ReportKind};
    let config: Config = Config::from_env();
    let _ = config;
    let reports: Vec<Report> = lockwatch::check();
    for r in &reports {
        let kind: ReportKind = r.kind();
        let json: String = r.to_json();
        let text: String = r.to_string();
        let _ = (kind, json, text);
    }
    let kinds = [
        ReportKind::Deadlock,
        ReportKind::Stall,
        ReportKind::LockOrderInversion,
        ReportKind::LongWait,
        ReportKind::Hang,
    ];
    let copy = kinds[0];
    assert_eq!(copy, ReportKind::Deadlock);
}
