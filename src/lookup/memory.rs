//! Terminal jobs never change, so their rendered answers are kept for the life of the execution
//! environment and served without calling HealthLake. Bounded: when full, the oldest entry goes.

use crate::ids::{DatastoreId, JobId};
use crate::job::RenderedJob;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// About 1 KiB an entry, so at most about half a MiB.
const DEFAULT_CAPACITY: usize = 512;

type Key = (DatastoreId, JobId);

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

    pub(crate) fn get(&self, datastore: &DatastoreId, job: &JobId) -> Option<Arc<RenderedJob>> {
        // The map's key is an owned pair; building one costs two short string copies.
        self.lock().map.get(&(datastore.clone(), job.clone())).cloned()
    }

    /// Keeps `job` if it is terminal; running jobs are never stored.
    pub(crate) fn insert_if_terminal(
        &self,
        datastore: &DatastoreId,
        job: &JobId,
        rendered: Arc<RenderedJob>,
    ) {
        if !rendered.terminal {
            return;
        }
        let key = (datastore.clone(), job.clone());
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
        let view = crate::job::JobView {
            datastore_id: "ds".into(),
            job_id: "job".into(),
            job_name: None,
            status: if terminal { "COMPLETED" } else { "IN_PROGRESS" }.into(),
            terminal,
            submitted_at: "2026-01-01T00:00:00.000Z".into(),
            ended_at: None,
            message: None,
            output_s3_uri: None,
            submitted_epoch: 0,
        };
        Arc::new(view.render())
    }

    fn key(n: usize) -> (DatastoreId, JobId) {
        (
            DatastoreId::parse("ds").unwrap(),
            JobId::parse(&format!("job{n}")).unwrap(),
        )
    }

    #[test]
    fn keeps_terminal_jobs_only() {
        let cache = TerminalCache::new(4);
        let (ds, job) = key(1);
        cache.insert_if_terminal(&ds, &job, rendered(false));
        assert!(cache.get(&ds, &job).is_none());
        cache.insert_if_terminal(&ds, &job, rendered(true));
        assert!(cache.get(&ds, &job).is_some());
    }

    #[test]
    fn evicts_the_oldest_when_full() {
        let cache = TerminalCache::new(3);
        for n in 0..5 {
            let (ds, job) = key(n);
            cache.insert_if_terminal(&ds, &job, rendered(true));
            cache.insert_if_terminal(&ds, &job, rendered(true)); // a repeat takes no extra slot
        }
        assert_eq!(cache.len(), 3);
        for n in 0..2 {
            let (ds, job) = key(n);
            assert!(cache.get(&ds, &job).is_none(), "job{n} should be evicted");
        }
        for n in 2..5 {
            let (ds, job) = key(n);
            assert!(cache.get(&ds, &job).is_some(), "job{n} should be kept");
        }
    }
}
