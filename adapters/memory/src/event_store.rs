//! `MemoryEventStore`: the SSE events of stateful-era streams in this process, so a client
//! that lost its connection resumes with `Last-Event-ID` on the same node; bounded per
//! stream and swept with idle sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use qudag_application::ports::{EventBatch, EventStore, EventStoreError, StreamKey};
use tokio::sync::Notify;

/// Resumable SSE streams in this process's memory.
///
/// Each stream keeps its newest `max_events` events (a client that fell further behind
/// resumes from the oldest kept); a session's streams are dropped when it ends, or by
/// [`MemoryEventStore::sweep`] once unused for longer than the session idle timeout.
#[derive(Debug)]
pub struct MemoryEventStore {
    sessions: Mutex<HashMap<String, SessionStreams>>,
    max_events: usize,
}

#[derive(Debug)]
struct SessionStreams {
    next_stream: u64,
    streams: HashMap<u64, Arc<StreamLog>>,
    touched: Instant,
}

#[derive(Debug, Default)]
struct StreamLog {
    inner: Mutex<LogInner>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct LogInner {
    events: VecDeque<(u64, String)>,
    next_seq: u64,
    closed: bool,
}

impl MemoryEventStore {
    /// A store keeping at most `max_events` events per stream.
    pub fn new(max_events: usize) -> Self {
        Self { sessions: Mutex::new(HashMap::new()), max_events: max_events.max(1) }
    }

    /// Drop the streams of sessions unused for `idle`; returns how many sessions.
    pub fn sweep(&self, idle: Duration) -> usize {
        let mut sessions = self.lock();
        let before = sessions.len();
        sessions.retain(|_, s| s.touched.elapsed() < idle);
        before - sessions.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionStreams>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn log(&self, key: &StreamKey, create_standalone: bool) -> Result<Arc<StreamLog>, EventStoreError> {
        let mut sessions = self.lock();
        if !sessions.contains_key(&key.session) {
            if !(create_standalone && key.stream == 0) {
                return Err(EventStoreError::UnknownStream);
            }
            sessions.insert(
                key.session.clone(),
                SessionStreams { next_stream: 1, streams: HashMap::new(), touched: Instant::now() },
            );
        }
        let session = sessions.get_mut(&key.session).ok_or(EventStoreError::UnknownStream)?;
        session.touched = Instant::now();
        if key.stream == 0 {
            return Ok(session.streams.entry(0).or_default().clone());
        }
        session.streams.get(&key.stream).cloned().ok_or(EventStoreError::UnknownStream)
    }
}

impl Default for MemoryEventStore {
    fn default() -> Self {
        Self::new(1_000)
    }
}

fn lock_log(log: &StreamLog) -> std::sync::MutexGuard<'_, LogInner> {
    log.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn open(&self, session: &str) -> Result<u64, EventStoreError> {
        let mut sessions = self.lock();
        let entry = sessions.entry(session.to_owned()).or_insert_with(|| SessionStreams {
            next_stream: 1,
            streams: HashMap::new(),
            touched: Instant::now(),
        });
        let id = entry.next_stream;
        entry.next_stream += 1;
        entry.touched = Instant::now();
        entry.streams.insert(id, Arc::default());
        Ok(id)
    }

    async fn append(&self, key: &StreamKey, payload: String) -> Result<u64, EventStoreError> {
        let log = self.log(key, true)?;
        let seq = {
            let mut inner = lock_log(&log);
            inner.next_seq += 1;
            let seq = inner.next_seq;
            inner.events.push_back((seq, payload));
            while inner.events.len() > self.max_events {
                inner.events.pop_front();
            }
            seq
        };
        log.notify.notify_waiters();
        Ok(seq)
    }

    async fn close(&self, key: &StreamKey) -> Result<(), EventStoreError> {
        if let Ok(log) = self.log(key, false) {
            lock_log(&log).closed = true;
            log.notify.notify_waiters();
        }
        Ok(())
    }

    async fn read(&self, key: &StreamKey, after: u64, wait: Duration) -> Result<EventBatch, EventStoreError> {
        let log = self.log(key, true)?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so an append between the look and the
            // wait still wakes us.
            let notified = log.notify.notified();
            {
                let inner = lock_log(&log);
                let events: Vec<(u64, String)> = inner.events.iter().filter(|(seq, _)| *seq > after).cloned().collect();
                if !events.is_empty() || inner.closed || wait.is_zero() {
                    return Ok(EventBatch { events, closed: inner.closed });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let inner = lock_log(&log);
                return Ok(EventBatch { events: Vec::new(), closed: inner.closed });
            }
        }
    }

    async fn forget_session(&self, session: &str) -> Result<(), EventStoreError> {
        if let Some(streams) = self.lock().remove(session) {
            for log in streams.streams.values() {
                lock_log(log).closed = true;
                log.notify.notify_waiters();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streams_are_bounded_and_sessions_swept() {
        let store = MemoryEventStore::new(3);
        let stream = store.open("s").await.unwrap();
        let key = StreamKey { session: "s".into(), stream };
        for n in 0..10 {
            store.append(&key, n.to_string()).await.unwrap();
        }
        let batch = store.read(&key, 0, Duration::ZERO).await.unwrap();
        assert_eq!(batch.events.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![8, 9, 10]);
        assert_eq!(store.sweep(Duration::from_secs(60)), 0);
        assert_eq!(store.sweep(Duration::ZERO), 1);
        assert!(store.read(&key, 0, Duration::ZERO).await.is_err());
    }
}
