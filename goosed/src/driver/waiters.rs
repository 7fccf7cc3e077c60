//! Callers waiting for an answer: one bounded map of them per kind, each
//! caller under its own key with a deadline on the daemon's clock
//! ([`crate::clock::now`]). A waiter leaves the map exactly once: taken by
//! its key when its answer comes, or handed back by [`Waiters::take_expired`]
//! once its deadline has passed so it can be told it timed out; never both,
//! never twice. The map never holds more than its limit and never replaces a
//! waiter: a refused insert hands the new waiter back, so it too can be
//! answered.

use goose_common::Timestamp;
use std::collections::BTreeMap;

/// Fresh keys for waiters (proposal ids and nonces), one counter for every
/// kind: each key is handed out once, in increasing order, and never 0,
/// which is the shutdown handoff's proposal id.
#[derive(Debug, Default)]
pub(crate) struct Ids {
    last: u64,
}

impl Ids {
    /// A key no earlier call returned.
    pub(crate) fn fresh(&mut self) -> u64 {
        self.last += 1;
        self.last
    }
}

/// Why [`Waiters::insert`] refused a waiter; either way it is handed back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused<T> {
    /// As many waiters as the limit allows are already waiting.
    Full(T),
    /// Another waiter is already waiting under this key (it is kept).
    KeyInUse(T),
}

impl<T> Refused<T> {
    /// The waiter that was not taken in.
    pub(crate) fn into_value(self) -> T {
        match self {
            Refused::Full(value) | Refused::KeyInUse(value) => value,
        }
    }
}

struct Waiting<T> {
    value: T,
    deadline: Timestamp,
}

/// Waiters of one kind, at most `limit` at once, each under its own key
/// with its deadline.
pub(crate) struct Waiters<K, T> {
    limit: usize,
    waiting: BTreeMap<K, Waiting<T>>,
}

impl<K: Ord + Clone, T> Waiters<K, T> {
    /// An empty map that holds at most `limit` waiters.
    pub(crate) fn new(limit: usize) -> Waiters<K, T> {
        Waiters {
            limit,
            waiting: BTreeMap::new(),
        }
    }

    /// Whether one more waiter would be taken in. Callers check it before
    /// doing anything on the waiter's behalf (sending probes, applying a
    /// drill), so a full map refuses before any of it happens.
    pub(crate) fn has_room(&self) -> bool {
        self.waiting.len() < self.limit
    }

    /// Takes in `value` under `key` until `deadline`, or hands it back:
    /// when the map is full, or when another waiter already has the key
    /// (that one stays, so no waiter is dropped unanswered).
    pub(crate) fn insert(
        &mut self,
        key: K,
        value: T,
        deadline: Timestamp,
    ) -> Result<(), Refused<T>> {
        if self.waiting.contains_key(&key) {
            return Err(Refused::KeyInUse(value));
        }
        if !self.has_room() {
            return Err(Refused::Full(value));
        }
        self.waiting.insert(key, Waiting { value, deadline });
        Ok(())
    }

    /// The waiter under `key`, to add to what it has gathered (a probe's or
    /// a drill's answers so far); `None` once it has left.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut T> {
        self.waiting.get_mut(key).map(|waiting| &mut waiting.value)
    }

    /// Removes and returns the waiter under `key`, to be answered; `None` if
    /// there is none (never was, or already taken or expired).
    pub(crate) fn take(&mut self, key: &K) -> Option<T> {
        self.waiting.remove(key).map(|waiting| waiting.value)
    }

    /// Removes and returns the waiter under `key` if `ready` says it has
    /// all it waits for; otherwise it keeps waiting.
    pub(crate) fn take_if(&mut self, key: &K, ready: impl FnOnce(&T) -> bool) -> Option<T> {
        if ready(&self.waiting.get(key)?.value) {
            self.take(key)
        } else {
            None
        }
    }

    /// Removes and returns, in key order, every waiter whose deadline is at
    /// or before `now`, to be told it timed out. The others keep waiting.
    pub(crate) fn take_expired(&mut self, now: Timestamp) -> Vec<(K, T)> {
        let keys: Vec<K> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| waiting.deadline <= now)
            .map(|(key, _)| key.clone())
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                let value = self.take(&key)?;
                Some((key, value))
            })
            .collect()
    }

    /// The earliest deadline of anyone waiting here.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.waiting.values().map(|waiting| waiting.deadline).min()
    }
}
