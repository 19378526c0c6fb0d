//! The sink: appends chained events to JSON-lines files, rotates them and syncs them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qudag_application::BoxError;
use qudag_application::ports::{
    AuditFilter, AuditPage, AuditQuery, AuditSink, AuditSinkError, BatchOutcome, ComponentHealth, HealthIndicator,
};
use qudag_domain::audit::{AuditRecord, ChainHash, ChainHead, ChainedEvent, chain_hash};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::error::FileAuditError;
use crate::files::{Layout, LineReader, utc_day};

/// When written lines are forced to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before every `record` returns: an acknowledged record survives a crash
    /// of the process or the machine.
    Always,
    /// At most once per interval (on a write, or by a background task when writes stop):
    /// a machine crash may lose up to the interval's acknowledged records; a process crash
    /// loses nothing that was acknowledged.
    Interval(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        Self::Interval(Duration::from_secs(1))
    }
}

/// How a [`FileAuditSink`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAuditConfig {
    /// The active file. Rotated files sit beside it as `<stem>-<first seq, 20 digits>.jsonl`.
    pub path: PathBuf,
    /// Rotate before a write would take the active file past this size (a single larger
    /// record gets a file of its own).
    pub max_file_bytes: u64,
    /// Rotate when a record's UTC day (of its `at`) is later than the active file's.
    pub rotate_daily: bool,
    /// When to sync.
    pub fsync: FsyncPolicy,
}

impl FileAuditConfig {
    /// The default maximum file size: 64 MiB.
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

    /// Defaults (64 MiB, daily rotation, sync every second) for `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            rotate_daily: true,
            fsync: FsyncPolicy::default(),
        }
    }
}

/// The audit chain in JSON-lines files: one [`ChainedEvent`] per line, rotated by size and
/// UTC day, the chain continuing across files. See the crate documentation.
#[derive(Debug)]
pub struct FileAuditSink {
    writer: Arc<Mutex<Writer>>,
    status: Arc<StdMutex<Status>>,
    syncer: Option<tokio::task::AbortHandle>,
}

/// What health reports, readable without waiting for a write.
#[derive(Debug)]
struct Status {
    file: PathBuf,
    next_seq: u64,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Writer {
    layout: Layout,
    max_file_bytes: u64,
    rotate_daily: bool,
    fsync: FsyncPolicy,
    /// The active file, opened at the first write.
    file: Option<File>,
    /// Its length.
    len: u64,
    /// The seq of its first event (`None` while it is empty).
    first_seq: Option<u64>,
    /// The UTC day of its latest record.
    day: Option<u64>,
    head: ChainHead,
    dirty: bool,
    last_sync: Instant,
    /// Set when the file can no longer be trusted to hold what was acknowledged (a failed
    /// sync, or a failed write that could not be undone): every later write is refused.
    poisoned: Option<String>,
    status: Arc<StdMutex<Status>>,
}

/// What the head file's scan found.
#[derive(Debug, Default)]
struct Scan {
    first: Option<(u64, ChainHash)>,
    last: Option<(u64, ChainHash, u64)>,
    len: u64,
}

impl FileAuditSink {
    /// Open (or create) the chain at `config.path`: find its head, repair a torn last line
    /// (a crash mid-write; the record was never acknowledged) and continue from there.
    ///
    /// Call inside a Tokio runtime to get the background sync of [`FsyncPolicy::Interval`];
    /// without one, interval syncs happen on writes and at `flush` only.
    ///
    /// # Errors
    /// The files cannot be read or created, a line before the end is not a valid event or
    /// does not link (named by file and line: the sink refuses to extend a broken chain),
    /// or the configuration cannot work.
    pub fn open(config: FileAuditConfig) -> Result<Self, FileAuditError> {
        let invalid = |reason: &str| FileAuditError::InvalidConfig { path: config.path.clone(), reason: reason.into() };
        if config.max_file_bytes == 0 {
            return Err(invalid("max_file_bytes must be positive"));
        }
        if config.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return Err(invalid("the fsync interval must be positive (use FsyncPolicy::Always)"));
        }
        let layout = Layout::new(&config.path)?;
        std::fs::create_dir_all(&layout.dir).map_err(FileAuditError::io(&layout.dir, "create directory"))?;
        let rotated = layout.rotated()?;

        let active_exists = layout.active.exists();
        let active = if active_exists { scan_head_file(&layout.active, true)? } else { Scan::default() };
        let mut head = ChainHead::GENESIS;
        let mut day = None;
        if let Some((first_seq, first_prev)) = active.first {
            if let Some((_, newest)) = rotated.last() {
                let before = scan_head_file(newest, false)?;
                if let Some((seq, hash, _)) = before.last
                    && (seq + 1 != first_seq || hash != first_prev)
                {
                    return Err(FileAuditError::Corrupt {
                        path: layout.active.clone(),
                        line: 1,
                        reason: format!(
                            "event {first_seq} does not continue {} (which ends at event {seq})",
                            newest.display()
                        ),
                    });
                }
            }
            if let Some((seq, hash, at_day)) = active.last {
                head = ChainHead { next_seq: seq + 1, head: hash };
                day = Some(at_day);
            }
        } else if let Some((_, newest)) = rotated.last()
            && let Some((seq, hash, _)) = scan_head_file(newest, false)?.last
        {
            head = ChainHead { next_seq: seq + 1, head: hash };
        }

        let file = if active_exists {
            Some(
                OpenOptions::new()
                    .append(true)
                    .open(&layout.active)
                    .map_err(FileAuditError::io(&layout.active, "open for append"))?,
            )
        } else {
            None
        };
        let status =
            Arc::new(StdMutex::new(Status { file: layout.active.clone(), next_seq: head.next_seq, last_error: None }));
        tracing::info!(file = %layout.active.display(), next_seq = head.next_seq, "audit file sink opened");
        let writer = Arc::new(Mutex::new(Writer {
            layout,
            max_file_bytes: config.max_file_bytes,
            rotate_daily: config.rotate_daily,
            fsync: config.fsync,
            file,
            len: active.len,
            first_seq: active.first.map(|(seq, _)| seq),
            day,
            head,
            dirty: false,
            last_sync: Instant::now(),
            poisoned: None,
            status: status.clone(),
        }));
        let syncer = match (config.fsync, tokio::runtime::Handle::try_current()) {
            (FsyncPolicy::Interval(every), Ok(runtime)) => Some(spawn_syncer(&runtime, &writer, every)),
            _ => None,
        };
        Ok(Self { writer, status, syncer })
    }

    /// Where the chain stands.
    pub async fn head(&self) -> ChainHead {
        self.writer.lock().await.head
    }

    /// The active file.
    pub fn path(&self) -> PathBuf {
        lock(&self.status).file.clone()
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Writer) -> Result<T, AuditSinkError> + Send + 'static,
    ) -> Result<T, AuditSinkError> {
        let mut guard: OwnedMutexGuard<Writer> = self.writer.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || job(&mut guard)).await.map_err(unavailable)?
    }
}

impl Drop for FileAuditSink {
    fn drop(&mut self) {
        if let Some(syncer) = &self.syncer {
            syncer.abort();
        }
    }
}

fn spawn_syncer(
    runtime: &tokio::runtime::Handle,
    writer: &Arc<Mutex<Writer>>,
    every: Duration,
) -> tokio::task::AbortHandle {
    let weak = Arc::downgrade(writer);
    runtime
        .spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(writer) = weak.upgrade() else { break };
                let mut guard = writer.lock_owned().await;
                if guard.dirty {
                    // The outcome is recorded in the status (health) and poisons the writer.
                    let _ = tokio::task::spawn_blocking(move || guard.sync()).await;
                }
            }
        })
        .abort_handle()
}

fn lock(status: &StdMutex<Status>) -> std::sync::MutexGuard<'_, Status> {
    status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unavailable(e: impl Into<BoxError>) -> AuditSinkError {
    AuditSinkError::Unavailable { source: e.into() }
}

/// Read a file at the head of the chain and check its lines link. A torn last line (a
/// crash mid-write: never acknowledged) is truncated away when `repair` is set (the active
/// file) and an error otherwise (a rotated file is closed only after a clean sync); a bad
/// line before the end is always an error.
fn scan_head_file(path: &Path, repair: bool) -> Result<Scan, FileAuditError> {
    let mut reader = LineReader::open(path)?;
    let mut scan = Scan::default();
    // A line that did not parse; fatal unless it turns out to be the last.
    let mut torn: Option<(u64, u64, String)> = None;
    while let Some(line) = reader.next_line().map_err(FileAuditError::io(path, "read"))? {
        if let Some((number, _, reason)) = torn.take() {
            return Err(FileAuditError::Corrupt { path: path.to_owned(), line: number, reason });
        }
        let event = match line.parse() {
            Ok(event) if line.complete => event,
            Ok(_) => {
                torn = Some((line.number, line.offset, "the last line has no newline".into()));
                continue;
            }
            Err(reason) => {
                torn = Some((line.number, line.offset, reason));
                continue;
            }
        };
        let corrupt = |reason: String| FileAuditError::Corrupt { path: path.to_owned(), line: line.number, reason };
        if event.seq == u64::MAX {
            return Err(corrupt(format!("event {} leaves no room for a next event", event.seq)));
        }
        if let Some((seq, hash, _)) = scan.last {
            if event.seq != seq + 1 {
                return Err(corrupt(format!("expected event {} but found event {}", seq + 1, event.seq)));
            }
            if event.prev_hash != hash {
                return Err(corrupt(format!("event {} does not link to the event before it", event.seq)));
            }
        } else if event.seq == 0 && event.prev_hash != ChainHash::GENESIS {
            return Err(corrupt("event 0 does not start from the genesis hash".into()));
        }
        if chain_hash(&event.prev_hash, event.seq, &event.record) != event.hash {
            return Err(corrupt(format!("event {} was altered: its hash does not match its content", event.seq)));
        }
        scan.first.get_or_insert((event.seq, event.prev_hash));
        scan.last = Some((event.seq, event.hash, utc_day(event.record.at)));
        scan.len = line.offset + line.text.len() as u64 + 1;
    }
    if let Some((number, offset, reason)) = torn {
        if !repair {
            return Err(FileAuditError::Corrupt { path: path.to_owned(), line: number, reason });
        }
        tracing::warn!(
            file = %path.display(), line = number, %reason,
            "audit file ends with a torn line (a crash mid-write; it was never acknowledged): truncating it away"
        );
        let file = OpenOptions::new().write(true).open(path).map_err(FileAuditError::io(path, "open to repair"))?;
        file.set_len(offset).map_err(FileAuditError::io(path, "truncate the torn last line of"))?;
        file.sync_all().map_err(FileAuditError::io(path, "sync"))?;
        scan.len = offset;
    }
    Ok(scan)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Writer {
    fn fail(&self, what: String) -> AuditSinkError {
        tracing::error!(file = %self.layout.active.display(), error = %what, "audit write failed");
        lock(&self.status).last_error = Some(what.clone());
        unavailable(what)
    }

    fn poison(&mut self, what: String) -> AuditSinkError {
        self.poisoned = Some(what.clone());
        self.fail(what)
    }

    /// Append a batch with one sync at its end (group commit): the events written, a
    /// prefix of `records`, and the error that stopped the batch, if any.
    fn append_batch(&mut self, records: Vec<AuditRecord>) -> BatchOutcome {
        let mut recorded = Vec::with_capacity(records.len());
        for record in records {
            match self.append_deferred(record, true) {
                Ok(event) => recorded.push(event),
                Err(error) => return BatchOutcome { recorded, error: Some(error) },
            }
        }
        if self.fsync == FsyncPolicy::Always
            && let Err(error) = self.sync()
        {
            // Nothing of the batch is acknowledged; the writer is poisoned, so nothing
            // follows these unsynced lines until the chain is reopened.
            return BatchOutcome { recorded: Vec::new(), error: Some(error) };
        }
        BatchOutcome { recorded, error: None }
    }

    fn append(&mut self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        self.append_deferred(record, false)
    }

    /// Append one record; with `defer_sync` no sync is due (the caller syncs).
    fn append_deferred(&mut self, record: AuditRecord, defer_sync: bool) -> Result<ChainedEvent, AuditSinkError> {
        if let Some(why) = &self.poisoned {
            return Err(
                self.fail(format!("audit file {} is unusable until reopened: {why}", self.layout.active.display()))
            );
        }
        let mut head = self.head;
        let event = head.append(record);
        let mut line = serde_json::to_vec(&event).map_err(|e| self.fail(format!("cannot serialise event: {e}")))?;
        line.push(b'\n');
        let day = utc_day(event.record.at);
        let new_day = self.rotate_daily && self.day.is_some_and(|d| day > d);
        if self.len > 0 && (self.len + line.len() as u64 > self.max_file_bytes || new_day) {
            self.rotate()?;
        }
        let active = self.layout.active.clone();
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&active)
                .map_err(|e| self.fail(format!("cannot create audit file {}: {e}", active.display())))?;
            sync_dir(&self.layout.dir)
                .map_err(|e| self.fail(format!("cannot sync directory {}: {e}", self.layout.dir.display())))?;
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(self.fail(format!("audit file {} is not open", active.display())));
        };
        let before = self.len;
        let sync_due = match self.fsync {
            _ if defer_sync => false,
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        let written = file.write_all(&line);
        let synced = if written.is_ok() && sync_due { file.sync_data() } else { Ok(()) };
        if let Err(e) = written {
            // Undo the partial line so the file still ends on a whole event.
            let undone = file.set_len(before);
            let what = format!("cannot write audit file {}: {e}", active.display());
            return Err(if undone.is_ok() { self.fail(what) } else { self.poison(what) });
        }
        if let Err(e) = synced {
            // Not acknowledged, so take it back; but earlier unsynced pages may be lost too.
            let _ = file.set_len(before);
            return Err(self.poison(format!("cannot sync audit file {}: {e}", active.display())));
        }
        if sync_due {
            self.last_sync = Instant::now();
            self.dirty = false;
        } else {
            self.dirty = true;
        }
        self.head = head;
        self.len += line.len() as u64;
        self.first_seq.get_or_insert(event.seq);
        self.day = Some(self.day.map_or(day, |d| d.max(day)));
        let mut status = lock(&self.status);
        status.next_seq = head.next_seq;
        status.last_error = None;
        Ok(event)
    }

    /// Close the active file under the name `<stem>-<first seq>.jsonl`; the next write
    /// starts a new active file.
    fn rotate(&mut self) -> Result<(), AuditSinkError> {
        self.sync()?;
        let Some(first) = self.first_seq else { return Ok(()) };
        let target = self.layout.rotated_path(first);
        if target.exists() {
            return Err(self.fail(format!("cannot rotate: {} already exists", target.display())));
        }
        std::fs::rename(&self.layout.active, &target).map_err(|e| {
            self.fail(format!("cannot rotate {} to {}: {e}", self.layout.active.display(), target.display()))
        })?;
        sync_dir(&self.layout.dir)
            .map_err(|e| self.fail(format!("cannot sync directory {}: {e}", self.layout.dir.display())))?;
        tracing::info!(file = %target.display(), first_seq = first, last_seq = self.head.next_seq - 1, "audit file rotated");
        self.file = None;
        self.len = 0;
        self.first_seq = None;
        self.day = None;
        Ok(())
    }

    /// Sync what was written; a failure poisons the writer (the kernel may have dropped
    /// the unsynced pages, so acknowledged records may be gone).
    fn sync(&mut self) -> Result<(), AuditSinkError> {
        if let Some(why) = &self.poisoned {
            return Err(unavailable(why.clone()));
        }
        if !self.dirty {
            return Ok(());
        }
        if let Some(file) = &self.file
            && let Err(e) = file.sync_data()
        {
            return Err(self.poison(format!("cannot sync audit file {}: {e}", self.layout.active.display())));
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The files a query starting at `start` must read, opened now (under the lock) so a
    /// rotation while it reads cannot hide events, and the seq the chain had reached.
    fn open_for_query(&self, start: u64) -> Result<(Vec<(PathBuf, File)>, u64), AuditSinkError> {
        let mut files = self.layout.rotated().map_err(unavailable)?;
        if let Some(first) = self.first_seq {
            files.push((first, self.layout.active.clone()));
        }
        let mut opened = Vec::new();
        for (i, (_, path)) in files.iter().enumerate() {
            if files.get(i + 1).is_some_and(|(next_first, _)| *next_first <= start) {
                continue;
            }
            let file = File::open(path).map_err(|e| unavailable(format!("cannot open {}: {e}", path.display())))?;
            opened.push((path.clone(), file));
        }
        Ok((opened, self.head.next_seq))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.dirty
            && self.poisoned.is_none()
            && let Some(file) = &self.file
            && let Err(e) = file.sync_data()
        {
            tracing::error!(file = %self.layout.active.display(), error = %e, "cannot sync audit file at close");
        }
    }
}

#[async_trait]
impl AuditSink for FileAuditSink {
    async fn record(&self, record: AuditRecord) -> Result<ChainedEvent, AuditSinkError> {
        self.run(move |w| w.append(record)).await
    }

    async fn record_batch(&self, records: Vec<AuditRecord>) -> BatchOutcome {
        let count = records.len();
        match self.run(move |w| Ok(w.append_batch(records))).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, count, "audit batch write task failed");
                BatchOutcome { recorded: Vec::new(), error: Some(error) }
            }
        }
    }

    async fn flush(&self) -> Result<(), AuditSinkError> {
        self.run(Writer::sync).await
    }
}

const CURSOR_PREFIX: &str = "seq:";

/// `seq:<n>`: the seq of the last event of the previous page.
fn parse_cursor(cursor: &str) -> Option<u64> {
    let digits = cursor.strip_prefix(CURSOR_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[async_trait]
impl AuditQuery for FileAuditSink {
    async fn query(
        &self,
        filter: &AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, AuditSinkError> {
        let (files, next_seq, after) = {
            let writer = self.writer.lock().await;
            let next_seq = writer.head.next_seq;
            let after = match cursor {
                None => None,
                Some(c) => match parse_cursor(&c) {
                    Some(seq) if seq < next_seq => Some(seq),
                    _ => return Err(AuditSinkError::InvalidCursor(c)),
                },
            };
            let (files, next_seq) = writer.open_for_query(after.map_or(0, |a| a + 1))?;
            (files, next_seq, after)
        };
        let filter = filter.clone();
        let limit = limit.max(1);
        tokio::task::spawn_blocking(move || scan_page(files, next_seq, after, &filter, limit))
            .await
            .map_err(unavailable)?
    }
}

fn scan_page(
    files: Vec<(PathBuf, File)>,
    next_seq: u64,
    after: Option<u64>,
    filter: &AuditFilter,
    limit: usize,
) -> Result<AuditPage, AuditSinkError> {
    let start = after.map_or(0, |a| a + 1);
    let mut events = Vec::new();
    let mut more = false;
    'files: for (path, file) in files {
        let mut reader = LineReader::new(file);
        while let Some(line) =
            reader.next_line().map_err(|e| unavailable(format!("cannot read {}: {e}", path.display())))?
        {
            if !line.complete {
                // A write in progress after our snapshot.
                break;
            }
            let event = line
                .parse()
                .map_err(|why| unavailable(format!("audit file {} line {}: {why}", path.display(), line.number)))?;
            if event.seq >= next_seq {
                break 'files;
            }
            if event.seq < start || !filter.matches(&event) {
                continue;
            }
            if events.len() == limit {
                more = true;
                break 'files;
            }
            events.push(event);
        }
    }
    let next_cursor = match events.last() {
        Some(last) if more => Some(format!("{CURSOR_PREFIX}{}", last.seq)),
        _ => None,
    };
    Ok(AuditPage { events, next_cursor })
}

#[async_trait]
impl HealthIndicator for FileAuditSink {
    async fn health(&self) -> ComponentHealth {
        let status = lock(&self.status);
        match &status.last_error {
            Some(error) => ComponentHealth::down(format!("last audit write failed: {error}")),
            None => ComponentHealth::up(format!("file {}, next seq {}", status.file.display(), status.next_seq)),
        }
    }
}
