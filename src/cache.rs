//! Terminal jobs never change, so their rendered answers are kept for the life of the execution
//! environment and served without calling HealthLake. Bounded: when full, the oldest entry goes.
//! Keyed by the fields the answer carries too, so that one kind of caller's answer (with
//! `outputS3Uri`) is never served to another.

use crate::ids::{DatastoreId, JobId};
use crate::job::RenderedJob;
use crate::scope::Fields;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// About 1 KiB an entry, so at most about half a MiB.
const DEFAULT_CAPACITY: usize = 512;

type Key = (DatastoreId, JobId, Fields);

pub(crate) struct TerminalCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Arc<RenderedJob>>,
    order: VecDeque<Key>,
}

impl Default for TerminalCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl TerminalCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TerminalCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn get(
        &self,
        datastore: &DatastoreId,
        job: &JobId,
        fields: Fields,
    ) -> Option<Arc<RenderedJob>> {
        // The map's key is owned; building one costs two short string copies.
        self.lock()
            .map
            .get(&(datastore.clone(), job.clone(), fields))
            .cloned()
    }

    /// Keeps `job` if it is terminal; running jobs are never stored.
    pub(crate) fn insert_if_terminal(
        &self,
        datastore: &DatastoreId,
        job: &JobId,
        fields: Fields,
        rendered: Arc<RenderedJob>,
    ) {
        if !rendered.terminal {
            return;
        }
        let key = (datastore.clone(), job.clone(), fields);
        let mut inner = self.lock();
        if inner.map.insert(key.clone(), rendered).is_none() {
            inner.order.push_back(key);
            while inner.order.len() > self.capacity {
                if let Some(oldest) = inner.order.pop_front() {
                    inner.map.remove(&oldest);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// A panic elsewhere cannot leave this map half-written (every mutation completes before
    /// anything can panic), so a poisoned lock is still safe to use.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(terminal: bool) -> Arc<RenderedJob> {
        Arc::new(RenderedJob {
            body: "{}".into(),
            etag: "\"0\"".into(),
            terminal,
            submitted_epoch: 0,
        })
    }

    fn key(n: usize) -> (DatastoreId, JobId) {
        (
            DatastoreId::parse("ds").unwrap(),
            JobId::parse(&format!("job{n}")).unwrap(),
        )
    }

    const ALL: Fields = Fields::All;

    #[test]
    fn keeps_terminal_jobs_only() {
        let cache = TerminalCache::new(4);
        let (ds, job) = key(1);
        cache.insert_if_terminal(&ds, &job, ALL, rendered(false));
        assert!(cache.get(&ds, &job, ALL).is_none());
        cache.insert_if_terminal(&ds, &job, ALL, rendered(true));
        assert!(cache.get(&ds, &job, ALL).is_some());
    }

    #[test]
    fn an_answer_is_served_only_with_the_fields_it_was_rendered_with() {
        let cache = TerminalCache::new(4);
        let (ds, job) = key(1);
        cache.insert_if_terminal(&ds, &job, ALL, rendered(true));
        assert!(cache.get(&ds, &job, Fields::WithoutOutputUri).is_none());
        cache.insert_if_terminal(&ds, &job, Fields::WithoutOutputUri, rendered(true));
        assert!(cache.get(&ds, &job, Fields::WithoutOutputUri).is_some());
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn evicts_the_oldest_when_full() {
        let cache = TerminalCache::new(3);
        for n in 0..5 {
            let (ds, job) = key(n);
            cache.insert_if_terminal(&ds, &job, ALL, rendered(true));
            cache.insert_if_terminal(&ds, &job, ALL, rendered(true)); // a repeat takes no extra slot
        }
        assert_eq!(cache.len(), 3);
        for n in 0..2 {
            let (ds, job) = key(n);
            assert!(cache.get(&ds, &job, ALL).is_none(), "job{n} should be evicted");
        }
        for n in 2..5 {
            let (ds, job) = key(n);
            assert!(cache.get(&ds, &job, ALL).is_some(), "job{n} should be kept");
        }
    }
}
