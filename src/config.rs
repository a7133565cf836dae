//! Settings: read once from the environment (SPEC §4), overridable through [`Config`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

/// What happens when a deadlock or stall is found (`LOCKWATCH_ON_DEADLOCK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDeadlock {
    /// Print the report (and write it to the report directory) and keep running.
    Report,
    /// The thread whose wait closed the cycle panics with a message starting
    /// `deadlock detected`; its guards drop as it unwinds.
    Panic,
    /// Print and write the report, then exit the process with status 86.
    Abort,
}

/// How lock-order inversions are treated (`LOCKWATCH_LOCK_ORDER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockOrder {
    /// Lock order is not tracked at all.
    Off,
    /// Report each inversion once and go on.
    Warn,
    /// An inversion is handled like a deadlock, following [`OnDeadlock`].
    Error,
}

/// What goes to stderr (`LOCKWATCH_FORMAT`): the detector's one output format type, shared
/// with the CLI's `--format`. The variable accepts `text` and `json`; the typed API takes any
/// format.
pub use lockwatch_detector::render::Format;

/// Which backtraces are captured (`LOCKWATCH_BACKTRACE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BacktraceMode {
    /// None at all.
    Off,
    /// Of each thread once its wait outlasts a short threshold (cheap: only blocked threads pay).
    Blocked,
    /// Also where each held lock was acquired: every tracked acquisition pays for a capture
    /// (microseconds), so use it to chase a report, not in production.
    Full,
}

/// Which test harness runs the process (`LOCKWATCH_HARNESS`): what its threads that lockwatch
/// never sees can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Harness {
    /// Rust's default test harness (libtest): the process's main thread only coordinates tests
    /// and never releases, sets or notifies a lockwatch primitive, so while lockwatch has not
    /// seen it, it does not count as a thread that could end a wait. Inside an ordinary
    /// `#[test]` a `Lock` acquired twice is then reported.
    Libtest,
    /// No harness lockwatch knows of: every thread it never saw may end a wait that any thread
    /// could end. The default; but while `LOCKWATCH_HARNESS` is unset, lockwatch applies
    /// `Libtest`'s rule where it can tell for certain that libtest runs the process (Linux: the
    /// executable is a test binary built with the harness, which defines libtest's entry
    /// point). `LOCKWATCH_HARNESS=none` switches that off.
    None,
}

/// The runtime's settings. [`Config::from_env`] gives the ones the environment asks for;
/// [`Config::install`] makes a value current for the whole process.
///
/// ```
/// use lockwatch::{Config, OnDeadlock};
/// let mut config = Config::from_env();
/// config.on_deadlock = OnDeadlock::Panic;
/// config.install();
/// assert_eq!(Config::current().on_deadlock, OnDeadlock::Panic);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `LOCKWATCH`: instrumentation on (default with feature `detect`) or off.
    pub enabled: bool,
    /// `LOCKWATCH_ON_DEADLOCK`.
    pub on_deadlock: OnDeadlock,
    /// `LOCKWATCH_LOCK_ORDER`.
    pub lock_order: LockOrder,
    /// `LOCKWATCH_REPORT_DIR`: every finding is also written there as a JSON file.
    pub report_dir: Option<PathBuf>,
    /// `LOCKWATCH_FORMAT`.
    pub format: Format,
    /// `LOCKWATCH_WATCHDOG_MS`: how often the watchdog re-checks the graph.
    pub watchdog_period: Duration,
    /// `LOCKWATCH_LONG_WAIT_MS`: report waits longer than this; `None` (0) is off.
    pub long_wait: Option<Duration>,
    /// `LOCKWATCH_ORDER_GRAPH`: where to write the learned lock hierarchy at exit.
    pub order_graph: Option<PathBuf>,
    /// `LOCKWATCH_BACKTRACE`.
    pub backtrace: BacktraceMode,
    /// `LOCKWATCH_HARNESS`.
    pub harness: Harness,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: cfg!(feature = "detect"),
            on_deadlock: OnDeadlock::Report,
            lock_order: LockOrder::Warn,
            report_dir: None,
            format: Format::Text,
            watchdog_period: Duration::from_millis(100),
            long_wait: None,
            order_graph: None,
            backtrace: BacktraceMode::Blocked,
            // `None`, which still follows libtest's rule where the runtime can tell that
            // libtest runs the process (see `Harness::None`; README, "Threads lockwatch never
            // saw"). `lockwatch run` sets `Libtest` for test commands.
            harness: Harness::None,
        }
    }
}

/// Parses one variable; on a bad value prints the one-line error and keeps the default.
fn parse_var<T>(
    name: &str,
    accepted: &str,
    default: T,
    parse: impl FnOnce(&str) -> Option<T>,
) -> T {
    match std::env::var(name) {
        Err(std::env::VarError::NotPresent) => default,
        Ok(value) => match parse(value.trim()) {
            Some(v) => v,
            None => {
                crate::diag::diag!(
                    "lockwatch: error: invalid {name}={value:?}: expected {accepted}; using the default"
                );
                default
            }
        },
        Err(std::env::VarError::NotUnicode(value)) => {
            crate::diag::diag!(
                "lockwatch: error: invalid {name}={value:?}: expected {accepted}; using the default"
            );
            default
        }
    }
}

fn parse_millis(v: &str) -> Option<u64> {
    v.parse::<u64>().ok()
}

/// An empty value means unset, as shells often export it.
fn parse_path(v: &str) -> Option<Option<PathBuf>> {
    Some((!v.is_empty()).then(|| PathBuf::from(v)))
}

impl Config {
    /// The settings the environment asks for (SPEC §4). A bad value prints a one-line error
    /// naming the variable and the accepted values, and the default is used instead.
    pub fn from_env() -> Config {
        let d = Config::default();
        let enabled = parse_var("LOCKWATCH", "`on` or `off`", d.enabled, |v| match v {
            "on" => Some(cfg!(feature = "detect")),
            "off" => Some(false),
            _ => None,
        });
        let on_deadlock = parse_var(
            "LOCKWATCH_ON_DEADLOCK",
            "`report`, `panic` or `abort`",
            d.on_deadlock,
            |v| match v {
                "report" => Some(OnDeadlock::Report),
                "panic" => Some(OnDeadlock::Panic),
                "abort" => Some(OnDeadlock::Abort),
                _ => None,
            },
        );
        let lock_order = parse_var(
            "LOCKWATCH_LOCK_ORDER",
            "`off`, `warn` or `error`",
            d.lock_order,
            |v| match v {
                "off" => Some(LockOrder::Off),
                "warn" => Some(LockOrder::Warn),
                "error" => Some(LockOrder::Error),
                _ => None,
            },
        );
        let report_dir = parse_var(
            "LOCKWATCH_REPORT_DIR",
            "a directory path",
            d.report_dir,
            parse_path,
        );
        let format = parse_var(
            "LOCKWATCH_FORMAT",
            "`text` or `json`",
            d.format,
            |v| match v {
                "text" => Some(Format::Text),
                "json" => Some(Format::Json),
                _ => None,
            },
        );
        let watchdog_period = parse_var(
            "LOCKWATCH_WATCHDOG_MS",
            "a period in milliseconds, at least 1",
            d.watchdog_period,
            |v| {
                parse_millis(v)
                    .filter(|&ms| ms >= 1)
                    .map(Duration::from_millis)
            },
        );
        let long_wait = parse_var(
            "LOCKWATCH_LONG_WAIT_MS",
            "a threshold in milliseconds (0 = off)",
            d.long_wait,
            |v| parse_millis(v).map(|ms| (ms > 0).then(|| Duration::from_millis(ms))),
        );
        let order_graph = parse_var(
            "LOCKWATCH_ORDER_GRAPH",
            "a file path (`.dot` for DOT, JSON otherwise)",
            d.order_graph,
            parse_path,
        );
        let backtrace = parse_var(
            "LOCKWATCH_BACKTRACE",
            "`blocked`, `full` or `off`",
            d.backtrace,
            |v| match v {
                "blocked" => Some(BacktraceMode::Blocked),
                "full" => Some(BacktraceMode::Full),
                "off" => Some(BacktraceMode::Off),
                _ => None,
            },
        );
        let harness = parse_var("LOCKWATCH_HARNESS", "`libtest` or `none`", d.harness, |v| {
            let chosen = match v {
                "libtest" => Some(Harness::Libtest),
                "none" => Some(Harness::None),
                _ => None,
            };
            HARNESS_CHOSEN.store(chosen.is_some(), Ordering::Relaxed);
            chosen
        });
        Config {
            enabled,
            on_deadlock,
            lock_order,
            report_dir,
            format,
            watchdog_period,
            long_wait,
            order_graph,
            backtrace,
            harness,
        }
    }

    /// The settings in force: the environment's, unless [`Config::install`] replaced them.
    pub fn current() -> Config {
        current().read().clone()
    }

    /// Makes these settings current for the whole process.
    ///
    /// Turning instrumentation off or on only affects locks acquired afterwards; a lock held
    /// across the switch is released correctly either way.
    pub fn install(self) {
        // `current()` first: as the process's first call, it reads the environment and
        // publishes the environment's flags, which must not win over these.
        let mut current = current().write();
        publish_fast_flags(&self);
        *current = self;
    }
}

static CURRENT: std::sync::OnceLock<parking_lot::RwLock<Config>> = std::sync::OnceLock::new();

/// Fast-path view of the settings: bit flags read with one relaxed load.
static FLAGS: AtomicU8 = AtomicU8::new(FLAGS_UNINIT);
const FLAGS_UNINIT: u8 = 0;
const FLAG_READY: u8 = 1;
const FLAG_ENABLED: u8 = 2;
const FLAG_ORDER: u8 = 4;
const FLAG_FULL_BACKTRACE: u8 = 8;

fn publish_fast_flags(config: &Config) {
    let mut flags = FLAG_READY;
    if config.enabled {
        flags |= FLAG_ENABLED;
        if config.lock_order != LockOrder::Off {
            flags |= FLAG_ORDER;
        }
        if config.backtrace == BacktraceMode::Full {
            flags |= FLAG_FULL_BACKTRACE;
        }
    }
    FLAGS.store(flags, Ordering::Relaxed);
}

pub(crate) fn current() -> &'static parking_lot::RwLock<Config> {
    CURRENT.get_or_init(|| {
        let config = Config::from_env();
        publish_fast_flags(&config);
        parking_lot::RwLock::new(config)
    })
}

#[inline(always)]
fn flags() -> u8 {
    let f = FLAGS.load(Ordering::Relaxed);
    if f == FLAGS_UNINIT {
        init_flags()
    } else {
        f
    }
}

#[cold]
fn init_flags() -> u8 {
    current();
    FLAGS.load(Ordering::Relaxed)
}

/// The settings the fast path needs, read once per acquisition.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) struct Tracking(u8);

#[cfg_attr(not(feature = "detect"), allow(dead_code))]
impl Tracking {
    #[inline(always)]
    pub(crate) fn lock_order(self) -> bool {
        self.0 & FLAG_ORDER != 0
    }

    #[inline(always)]
    pub(crate) fn full_backtraces(self) -> bool {
        self.0 & FLAG_FULL_BACKTRACE != 0
    }
}

/// The fast-path settings when acquisitions are tracked right now, `None` when they are not:
/// one relaxed load.
#[inline(always)]
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) fn tracking() -> Option<Tracking> {
    let flags = flags();
    (flags & FLAG_ENABLED != 0).then_some(Tracking(flags))
}

/// Whether acquisitions are tracked right now.
#[inline]
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) fn enabled() -> bool {
    tracking().is_some()
}

/// Whether lock order is tracked right now.
#[inline]
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) fn lock_order_enabled() -> bool {
    tracking().is_some_and(Tracking::lock_order)
}

/// Whether `LOCKWATCH_HARNESS` names a harness (a valid value): then lockwatch does not look
/// for one itself (see [`Harness::None`]).
static HARNESS_CHOSEN: AtomicBool = AtomicBool::new(false);

/// Whether the harness was chosen by `LOCKWATCH_HARNESS` rather than left to the default.
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) fn harness_chosen() -> bool {
    HARNESS_CHOSEN.load(Ordering::Relaxed)
}

/// The harness running the process (read by scans, not by the fast path).
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) fn harness() -> Harness {
    current().read().harness
}

/// Whether each acquisition captures a backtrace.
#[inline]
#[cfg_attr(not(feature = "detect"), allow(dead_code))]
pub(crate) fn full_backtraces() -> bool {
    tracking().is_some_and(Tracking::full_backtraces)
}
