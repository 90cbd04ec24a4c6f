//! What the bench asks of the operating system: the open-files limit, kernel receive times of
//! socket data, CPU ticks, memory and context switches from `/proc`, and a description of the
//! machine for the report. Linux only; every libc call lives here and nowhere else.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

/// The machine a run happened on, as the report shows it.
#[derive(Clone, Debug)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Total memory in KiB, from `/proc/meminfo`.
    pub memory_kib: u64,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The commit measured, with a note when the working tree had uncommitted changes.
    pub commit: String,
}

/// Context-switch count of one thread, with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSwitches {
    /// The thread's name (`comm`), e.g. `tokio-runtime-w`.
    pub name: String,
    /// Voluntary plus non-voluntary context switches since the thread started.
    pub switches: u64,
}

/// CPU use over a stretch of wall time, in percent of one core.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    /// The measured server.
    pub server: f64,
    /// This process, the load generator.
    pub bench: f64,
    /// Everything else on the machine (other programs, the kernel's own threads).
    pub others: f64,
}

/// Tick counts at the start of a stretch whose CPU use is wanted.
#[derive(Clone, Copy, Debug)]
pub struct CpuMeter {
    server_pid: u32,
    started: Instant,
    server: u64,
    bench: u64,
    machine: u64,
}

impl CpuMeter {
    /// Starts measuring the CPU use of `server_pid`, this process and the whole machine.
    ///
    /// # Errors
    /// When `/proc` cannot be read.
    pub fn start(server_pid: u32) -> Result<CpuMeter> {
        Ok(CpuMeter {
            server_pid,
            started: Instant::now(),
            server: cpu_ticks(server_pid)?,
            bench: cpu_ticks(0)?,
            machine: machine_busy_ticks()?,
        })
    }

    /// CPU used since `start`.
    ///
    /// # Errors
    /// When `/proc` cannot be read, e.g. because the server exited.
    pub fn read(&self) -> Result<CpuUse> {
        let per_second = clock_ticks_per_second() as f64;
        let seconds = self.started.elapsed().as_secs_f64().max(f64::EPSILON);
        let percent = |ticks: u64| ticks as f64 / per_second / seconds * 100.0;
        let server = cpu_ticks(self.server_pid)?.saturating_sub(self.server);
        let bench = cpu_ticks(0)?.saturating_sub(self.bench);
        let machine = machine_busy_ticks()?.saturating_sub(self.machine);
        Ok(CpuUse {
            server: percent(server),
            bench: percent(bench),
            others: percent(machine.saturating_sub(server + bench)),
        })
    }
}

impl Machine {
    /// Describes this machine; a part that cannot be read reads "unknown" rather than failing,
    /// since the figures are still worth having.
    pub fn describe() -> Machine {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|cpuinfo| field(&cpuinfo, "model name").map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|meminfo| kib_field(&meminfo, "MemTotal"))
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned());
        let rustc = command_line(Command::new("rustc").arg("--version"))
            .unwrap_or_else(|| "unknown".to_owned());
        let commit = match command_line(Command::new("git").args(["rev-parse", "--short", "HEAD"]))
        {
            Some(commit) => {
                let dirty = command_line(Command::new("git").args(["status", "--porcelain"]))
                    .is_some_and(|status| !status.is_empty());
                if dirty {
                    format!("{commit} plus uncommitted changes")
                } else {
                    commit
                }
            }
            None => "unknown".to_owned(),
        };
        Machine {
            cpu_model,
            cores,
            memory_kib,
            kernel,
            rustc,
            commit,
        }
    }
}

/// Raises this process's soft open-files limit to `wanted` (capped at the hard limit), so
/// a thousand sockets fit; children such as the server inherit it. Returns the new limit.
///
/// # Errors
/// When the limit cannot be read or set.
#[expect(
    unsafe_code,
    reason = "std has no wrapper for getrlimit/setrlimit; both only read or write the local struct"
)]
pub fn raise_open_files_limit(wanted: u64) -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("reading the open-files limit");
    }
    if limit.rlim_cur >= wanted {
        return Ok(limit.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: `raised` is a valid rlimit that outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("raising the open-files limit to {}", raised.rlim_cur));
    }
    Ok(raised.rlim_cur)
}

/// Sends SIGTERM to process `pid`, the graceful stop `blanket serve` answers by stopping its
/// local workers first.
///
/// # Errors
/// When the signal cannot be sent (the process is gone, for one).
#[expect(
    unsafe_code,
    reason = "std can only SIGKILL a child; kill(2) with SIGTERM takes no pointers"
)]
pub fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill only reads its two integer arguments.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel to record when data arrives on socket `fd`, for
/// [`receive_with_timestamp`].
///
/// # Errors
/// When the socket option cannot be set.
#[expect(
    unsafe_code,
    reason = "std has no wrapper for setsockopt; the option value is a live local int"
)]
pub fn enable_receive_timestamps(fd: RawFd) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the pointer and length describe `on`, which outlives the call.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads from socket `fd` into `buffer` without blocking, like `read`, and also returns when
/// the kernel received the newest of that data (wall clock), when it recorded one.
///
/// # Errors
/// As `recvmsg`, including `WouldBlock` when nothing is waiting.
#[expect(
    unsafe_code,
    reason = "std has no wrapper for recvmsg and its control messages; all pointers are to locals"
)]
pub fn receive_with_timestamp(
    fd: RawFd,
    buffer: &mut [u8],
) -> std::io::Result<(usize, Option<SystemTime>)> {
    let mut part = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr; 64 bytes hold one timespec message.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data, for which all zeroes is a valid (empty) value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &raw mut part;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `header` points at `part` (which points at `buffer`) and at `control`, all live
    // and writable for the call.
    let read = unsafe { libc::recvmsg(fd, &raw mut header, libc::MSG_DONTWAIT) };
    let Ok(read) = usize::try_from(read) else {
        return Err(std::io::Error::last_os_error());
    };
    let mut stamp = None;
    // SAFETY: `header` was filled in by recvmsg; the CMSG macros stay within `control`.
    let mut message = unsafe { libc::CMSG_FIRSTHDR(&raw const header) };
    while !message.is_null() {
        // SAFETY: non-null messages from CMSG_FIRSTHDR/CMSG_NXTHDR lie within `control`.
        let (level, kind) = unsafe { ((*message).cmsg_level, (*message).cmsg_type) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
            // SAFETY: an SCM_TIMESTAMPNS message carries one timespec, possibly unaligned.
            let time: libc::timespec =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(message).cast()) };
            if let (Ok(seconds), Ok(nanos)) =
                (u64::try_from(time.tv_sec), u32::try_from(time.tv_nsec))
            {
                stamp = Some(SystemTime::UNIX_EPOCH + Duration::new(seconds, nanos));
            }
        }
        // SAFETY: as above; returns null after the last message.
        message = unsafe { libc::CMSG_NXTHDR(&raw const header, message) };
    }
    Ok((read, stamp))
}

/// Clock ticks per second, the unit of the CPU times in `/proc/PID/stat`.
#[expect(
    unsafe_code,
    reason = "std has no wrapper for sysconf; _SC_CLK_TCK only reads a constant"
)]
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes no pointers and has no side effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // Linux has used 100 for as long as /proc has existed; a failed call should not stop a run.
    u64::try_from(ticks)
        .ok()
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// User plus system CPU time of process `pid` so far (threads that exited included), in ticks.
/// `pid` 0 means this process.
///
/// # Errors
/// When `/proc/PID/stat` cannot be read or parsed.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = if pid == 0 {
        "/proc/self/stat".to_owned()
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("parsing {path}"))
}

/// The file system type of the mount holding `path` (the longest matching mount point in
/// `/proc/mounts`), e.g. `ext4` or `tmpfs`.
pub fn file_system_type(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_device, mount_point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount_point)
                .then(|| (mount_point.len(), kind.to_owned()))
        })
        .max_by_key(|(length, _)| *length)
        .map(|(_, kind)| kind)
}

/// Ticks all CPUs of the machine spent busy (not idle, not waiting for I/O) since boot.
///
/// # Errors
/// When `/proc/stat` cannot be read or parsed.
pub fn machine_busy_ticks() -> Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_busy_ticks(&stat).context("parsing the cpu line of /proc/stat")
}

/// Resident memory of process `pid` now and at its peak, in KiB: `(VmRSS, VmHWM)`.
///
/// # Errors
/// When `/proc/PID/status` cannot be read or lacks the fields.
pub fn resident_kib(pid: u32) -> Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let current = kib_field(&status, "VmRSS").with_context(|| format!("no VmRSS in {path}"))?;
    let peak = kib_field(&status, "VmHWM").with_context(|| format!("no VmHWM in {path}"))?;
    Ok((current, peak))
}

/// Proportional set size of process `pid` in KiB: its resident pages, each shared page
/// divided among the processes mapping it.
///
/// # Errors
/// When `/proc/PID/smaps_rollup` cannot be read or lacks the field.
pub fn proportional_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let rollup = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    kib_field(&rollup, "Pss").with_context(|| format!("no Pss in {path}"))
}

/// Context switches of every live thread of process `pid`, by thread id.
///
/// # Errors
/// When `/proc/PID/task` cannot be listed. A thread that exits while being read is skipped.
pub fn thread_switches(pid: u32) -> Result<BTreeMap<u32, ThreadSwitches>> {
    let tasks = format!("/proc/{pid}/task");
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir(&tasks).with_context(|| format!("listing {tasks}"))? {
        let entry = entry.with_context(|| format!("listing {tasks}"))?;
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if let Some(switches) = read_thread(&entry.path()) {
            threads.insert(tid, switches);
        }
    }
    Ok(threads)
}

fn read_thread(dir: &Path) -> Option<ThreadSwitches> {
    // Either read fails when the thread has just exited; it then simply has no entry.
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let name = field(&status, "Name").unwrap_or("?").to_owned();
    let voluntary: u64 = field(&status, "voluntary_ctxt_switches")?.parse().ok()?;
    let involuntary: u64 = field(&status, "nonvoluntary_ctxt_switches")?.parse().ok()?;
    Some(ThreadSwitches {
        name,
        switches: voluntary + involuntary,
    })
}

/// Fields 14 and 15 (utime, stime) of a `/proc/PID/stat` line. The command name in field 2
/// may contain spaces and parentheses, so counting starts after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let Some((_, after_name)) = stat.rsplit_once(')') else {
        bail!("no closing parenthesis after the command name");
    };
    // After the name come field 3 (state) onwards, so utime is the 12th of these.
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields
        .next()
        .context("no utime field")?
        .parse()
        .context("utime is not a number")?;
    let system: u64 = fields
        .next()
        .context("no stime field")?
        .parse()
        .context("stime is not a number")?;
    Ok(user + system)
}

/// user + nice + system + irq + softirq + steal of the first (all-CPU) line of `/proc/stat`;
/// guest time is already inside user.
fn parse_busy_ticks(stat: &str) -> Result<u64> {
    let line = stat.lines().next().context("/proc/stat is empty")?;
    let mut fields = line.split_whitespace();
    if fields.next() != Some("cpu") {
        bail!("the first line is not the all-CPU line");
    }
    let numbers: Vec<u64> = fields
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("a CPU time is not a number")?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = numbers[..] else {
        bail!("fewer than 8 CPU times");
    };
    Ok(user + nice + system + irq + softirq + steal)
}

/// The value of a `Key: value` line (as in `/proc/cpuinfo` or `/proc/PID/status`), trimmed.
fn field<'text>(text: &'text str, key: &str) -> Option<&'text str> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim())
    })
}

/// The number of a `Key:   1234 kB` line.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    field(text, key)?.split_whitespace().next()?.parse().ok()
}

/// The first line a command prints, or `None` when it cannot run or fails.
fn command_line(command: &mut Command) -> Option<String> {
    let output = command.stderr(std::process::Stdio::null()).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "1234 (tokio (w) 1) S 1 1234 1234 0 -1 4194560 120 0 0 0 17 5 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 22);
    }

    #[test]
    fn busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  10 1 5 1000 7 2 3 4 0 0\ncpu0 5 0 2 500 3 1 1 2 0 0\n";
        assert_eq!(parse_busy_ticks(stat).unwrap(), 25);
        assert!(parse_busy_ticks("intr 1 2 3\n").is_err());
    }

    #[test]
    fn receive_timestamps_work_on_loopback_tcp() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        enable_receive_timestamps(client.as_raw_fd()).unwrap();
        // The kernel switches stamping on in a deferred work item when the first socket asks,
        // so the first packets after that may still go unstamped.
        for _ in 0..100 {
            let before = SystemTime::now();
            server.write_all(b"ping").unwrap();
            let mut buffer = [0u8; 16];
            let (read, stamp) = loop {
                match receive_with_timestamp(client.as_raw_fd(), &mut buffer) {
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    other => break other.unwrap(),
                }
            };
            assert_eq!(&buffer[..read], b"ping");
            if let Some(stamp) = stamp {
                assert!(stamp >= before && stamp <= SystemTime::now());
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the kernel never stamped loopback TCP data");
    }

    #[test]
    fn status_fields_are_found_by_exact_key() {
        let status = "Name:\tblanket\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(field(status, "Name"), Some("blanket"));
        assert_eq!(kib_field(status, "VmRSS"), Some(10240));
        assert_eq!(kib_field(status, "VmHWM"), Some(20480));
        assert_eq!(field(status, "ctxt_switches"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        assert!(cpu_ticks(0).is_ok());
        let own = std::process::id();
        assert!(resident_kib(own).unwrap().0 > 0);
        assert!(!thread_switches(own).unwrap().is_empty());
    }
}
