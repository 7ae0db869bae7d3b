//! The per-namespace fair queue: requests wait per namespace, and are taken
//! round-robin over namespaces, each namespace with at most
//! `--max-in-flight-per-namespace` in flight. So one namespace's flood waits
//! behind itself, never in front of another namespace's requests.

use std::collections::{HashMap, HashSet, VecDeque};

/// One request to work on (only what signing needs).
#[derive(Clone, Debug)]
pub struct Job {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid (the CertificateRequest's name comes from it).
    pub uid: String,
    /// The request, slimmed to what signing needs.
    pub request: std::sync::Arc<crate::types::PodCertificateRequest>,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Already queued or in flight.
    Known,
    /// A queue limit was reached.
    Full,
}

/// The queue's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// In flight, all namespaces.
    pub in_flight: usize,
    /// In flight, one namespace.
    pub in_flight_per_namespace: usize,
    /// Waiting, all namespaces.
    pub queued: usize,
    /// Waiting, one namespace.
    pub queued_per_namespace: usize,
}

/// See the module documentation.
#[derive(Debug)]
pub struct FairQueue {
    limits: Limits,
    waiting: HashMap<String, VecDeque<Job>>,
    /// Namespaces with waiting jobs, in round-robin order.
    turn: VecDeque<String>,
    in_flight: HashMap<String, usize>,
    /// uids queued or in flight.
    known: HashSet<String>,
    queued: usize,
    total_in_flight: usize,
}

impl FairQueue {
    /// An empty queue.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            waiting: HashMap::new(),
            turn: VecDeque::new(),
            in_flight: HashMap::new(),
            known: HashSet::new(),
            queued: 0,
            total_in_flight: 0,
        }
    }

    /// Queues a job unless it is known or a limit is reached.
    pub fn push(&mut self, job: Job) -> Result<(), Refused> {
        if self.known.contains(&job.uid) {
            return Err(Refused::Known);
        }
        let q = self.waiting.get(&job.namespace).map_or(0, VecDeque::len);
        if self.queued >= self.limits.queued || q >= self.limits.queued_per_namespace {
            return Err(Refused::Full);
        }
        self.known.insert(job.uid.clone());
        if q == 0 {
            self.turn.push_back(job.namespace.clone());
        }
        self.waiting
            .entry(job.namespace.clone())
            .or_default()
            .push_back(job);
        self.queued += 1;
        Ok(())
    }

    /// The next job to start, if the limits allow one.
    pub fn pop(&mut self) -> Option<Job> {
        if self.total_in_flight >= self.limits.in_flight {
            return None;
        }
        for _ in 0..self.turn.len() {
            let ns = self.turn.pop_front()?;
            let busy = self.in_flight.get(&ns).copied().unwrap_or(0);
            if busy >= self.limits.in_flight_per_namespace {
                self.turn.push_back(ns);
                continue;
            }
            let q = self.waiting.get_mut(&ns)?;
            let job = q.pop_front()?;
            if q.is_empty() {
                self.waiting.remove(&ns);
            } else {
                self.turn.push_back(ns.clone());
            }
            self.queued -= 1;
            *self.in_flight.entry(ns).or_insert(0) += 1;
            self.total_in_flight += 1;
            return Some(job);
        }
        None
    }

    /// Marks a started job finished.
    pub fn done(&mut self, job: &Job) {
        self.known.remove(&job.uid);
        if let Some(n) = self.in_flight.get_mut(&job.namespace) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&job.namespace);
            }
        }
        self.total_in_flight = self.total_in_flight.saturating_sub(1);
    }

    /// Jobs waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Jobs in flight.
    pub fn in_flight(&self) -> usize {
        self.total_in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(ns: &str, i: usize) -> Job {
        Job {
            namespace: ns.into(),
            name: format!("r{i}"),
            uid: format!("{ns}-{i}"),
            request: Default::default(),
        }
    }

    #[test]
    fn a_flood_does_not_delay_another_namespace() {
        let mut q = FairQueue::new(Limits {
            in_flight: 4,
            in_flight_per_namespace: 2,
            queued: 100,
            queued_per_namespace: 50,
        });
        for i in 0..50 {
            q.push(job("flood", i)).unwrap();
        }
        assert_eq!(q.push(job("flood", 99)), Err(Refused::Full));
        q.push(job("quiet", 0)).unwrap();
        let first: Vec<String> = (0..3)
            .filter_map(|_| q.pop())
            .map(|j| j.namespace)
            .collect();
        assert_eq!(first, ["flood", "quiet", "flood"]);
        // The flood is at its cap of 2 in flight: nothing more for it.
        assert!(q.pop().is_none());
        assert_eq!(q.push(job("quiet", 0)), Err(Refused::Known));
    }
}
