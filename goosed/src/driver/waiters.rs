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

#[cfg(test)]
mod tests {
    //! Goal: every waiter leaves exactly once (taken or expired, never both,
    //! never twice), expires at its deadline and not before, the limit holds
    //! and refuses rather than evicts, a key in use is never overwritten, a
    //! late answer finds nobody, and fresh ids never repeat or hit 0.
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn at(nanos: u64) -> Timestamp {
        Timestamp(nanos)
    }

    /// A waiter taken by its key is gone: neither a second take nor expiry
    /// returns it again.
    #[test]
    fn a_taken_waiter_is_answered_once() {
        let mut waiters = Waiters::new(4);
        waiters.insert(1u64, "caller", at(100)).unwrap();
        assert_eq!(waiters.take(&1), Some("caller"));
        assert_eq!(waiters.take(&1), None);
        assert!(waiters.take_expired(at(u64::MAX)).is_empty());
        assert_eq!(waiters.next_deadline(), None);
    }

    /// An expired waiter is handed back once, and a late answer under its
    /// key finds nobody.
    #[test]
    fn an_expired_waiter_is_answered_once() {
        let mut waiters = Waiters::new(4);
        waiters.insert(7u64, "caller", at(100)).unwrap();
        assert_eq!(waiters.take_expired(at(100)), vec![(7, "caller")]);
        assert!(waiters.take_expired(at(200)).is_empty());
        assert_eq!(waiters.take(&7), None);
        assert!(waiters.get_mut(&7).is_none());
        assert_eq!(waiters.take_if(&7, |_| true), None);
    }

    /// A waiter expires exactly at its deadline, not a nanosecond before;
    /// later ones keep waiting and the earliest deadline is reported.
    #[test]
    fn expiry_comes_at_the_deadline_and_not_before() {
        let deadline = at(1_000).add(Duration::from_millis(500));
        let mut waiters = Waiters::new(4);
        waiters.insert(1u64, 'a', deadline).unwrap();
        waiters
            .insert(2u64, 'b', deadline.add(Duration::from_nanos(1)))
            .unwrap();
        assert_eq!(waiters.next_deadline(), Some(deadline));
        assert!(waiters
            .take_expired(Timestamp(deadline.as_nanos() - 1))
            .is_empty());
        assert_eq!(waiters.take_expired(deadline), vec![(1, 'a')]);
        assert_eq!(
            waiters.next_deadline(),
            Some(deadline.add(Duration::from_nanos(1)))
        );
        assert_eq!(
            waiters.take_expired(deadline.add(Duration::from_nanos(1))),
            vec![(2, 'b')]
        );
    }

    /// Everyone past the deadline is handed back in key order, whatever
    /// order they came in.
    #[test]
    fn expired_waiters_come_back_in_key_order() {
        let mut waiters = Waiters::new(8);
        for key in [5u64, 2, 9, 1] {
            waiters.insert(key, key * 10, at(key)).unwrap();
        }
        assert_eq!(
            waiters.take_expired(at(9)),
            vec![(1, 10), (2, 20), (5, 50), (9, 90)]
        );
    }

    /// A full map refuses the next waiter and hands it back, keeping every
    /// waiter it has (refuse, never evict); taking one makes room again.
    #[test]
    fn the_limit_refuses_and_keeps_who_waits() {
        let mut waiters = Waiters::new(3);
        for key in 1..=3u64 {
            assert!(waiters.has_room());
            waiters.insert(key, key, at(10)).unwrap();
        }
        assert!(!waiters.has_room());
        assert_eq!(waiters.insert(4, 4, at(10)), Err(Refused::Full(4)));
        assert_eq!(waiters.take(&4), None);
        assert_eq!(waiters.take(&2), Some(2));
        assert!(waiters.has_room());
        waiters.insert(4, 4, at(10)).unwrap();
        assert_eq!(waiters.take_expired(at(10)), vec![(1, 1), (3, 3), (4, 4)]);
    }

    /// A limit of zero takes in nobody.
    #[test]
    fn a_zero_limit_refuses_everyone() {
        let mut waiters = Waiters::new(0);
        assert!(!waiters.has_room());
        assert_eq!(waiters.insert(1u64, 'a', at(1)), Err(Refused::Full('a')));
        assert_eq!(waiters.next_deadline(), None);
    }

    /// A key already waiting is refused, not overwritten: the first waiter
    /// keeps its value and deadline, and the second is handed back.
    #[test]
    fn a_key_in_use_is_refused_not_replaced() {
        let mut waiters = Waiters::new(4);
        waiters.insert(1u64, "first", at(10)).unwrap();
        let refused = waiters.insert(1, "second", at(5));
        assert_eq!(refused, Err(Refused::KeyInUse("second")));
        assert_eq!(refused.unwrap_err().into_value(), "second");
        assert_eq!(waiters.next_deadline(), Some(at(10)));
        assert!(waiters.take_expired(at(5)).is_empty());
        assert_eq!(waiters.take(&1), Some("first"));
    }

    /// A key can wait again once its waiter has left; the new waiter has
    /// its own deadline.
    #[test]
    fn a_key_is_free_again_once_its_waiter_left() {
        let mut waiters = Waiters::new(4);
        waiters.insert(1u64, "first", at(10)).unwrap();
        assert_eq!(waiters.take(&1), Some("first"));
        waiters.insert(1, "second", at(20)).unwrap();
        assert!(waiters.take_expired(at(10)).is_empty());
        assert_eq!(waiters.take_expired(at(20)), vec![(1, "second")]);
    }

    /// `take_if` leaves a waiter that is not ready and takes one that is;
    /// `get_mut` changes what the waiter will be answered with.
    #[test]
    fn take_if_takes_only_a_ready_waiter() {
        let mut waiters = Waiters::new(4);
        waiters.insert(1u64, Vec::<u32>::new(), at(10)).unwrap();
        assert_eq!(waiters.take_if(&1, |answers| answers.len() == 2), None);
        waiters.get_mut(&1).unwrap().push(1);
        assert_eq!(waiters.take_if(&1, |answers| answers.len() == 2), None);
        waiters.get_mut(&1).unwrap().push(2);
        assert_eq!(
            waiters.take_if(&1, |answers| answers.len() == 2),
            Some(vec![1, 2])
        );
        assert!(waiters.take_expired(at(10)).is_empty());
    }

    /// Fresh ids start at 1 (0 is the shutdown handoff's), increase, and
    /// never repeat.
    #[test]
    fn fresh_ids_never_repeat_and_are_never_zero() {
        let mut ids = Ids::default();
        let drawn: Vec<u64> = (0..10_000).map(|_| ids.fresh()).collect();
        assert_eq!(drawn[0], 1);
        assert!(drawn.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(!drawn.contains(&0));
    }

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        /// Insert under this key with a deadline this far after now.
        Insert(u64, u64),
        /// An answer arrives for this key.
        Take(u64),
        /// An answer arrives for this key, and it may or may not be enough.
        TakeIf(u64, bool),
        /// The clock moves on this far and the expired are answered.
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..12u64, 0..20u64).prop_map(|(key, after)| Op::Insert(key, after)),
            (0..12u64).prop_map(Op::Take),
            (0..12u64, any::<bool>()).prop_map(|(key, ready)| Op::TakeIf(key, ready)),
            (0..10u64).prop_map(Op::Expire),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Under any mix of inserts, answers and expiry, every waiter taken
        /// in leaves exactly once, no expired waiter had a deadline after
        /// the clock, nobody is kept past its deadline, a refused waiter
        /// comes back at once, and the limit always holds.
        #[test]
        fn every_waiter_leaves_exactly_once(limit in 0..6usize, ops in proptest::collection::vec(op(), 0..80)) {
            // Every waiter's value is unique, so where it went can be told.
            let mut waiters: Waiters<u64, u64> = Waiters::new(limit);
            let mut now = 0u64;
            let mut next_value = 0u64;
            let mut taken_in = BTreeSet::new();
            let mut left = BTreeSet::new();
            // The model: key -> (value, deadline).
            let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
            fn leave(value: u64, left: &mut BTreeSet<u64>) {
                assert!(left.insert(value), "waiter {value} left twice");
            }
            for op in ops {
                match op {
                    Op::Insert(key, after) => {
                        next_value += 1;
                        let value = next_value;
                        let deadline = now + after;
                        match waiters.insert(key, value, at(deadline)) {
                            Ok(()) => {
                                prop_assert!(!model.contains_key(&key));
                                prop_assert!(model.len() < limit);
                                model.insert(key, (value, deadline));
                                taken_in.insert(value);
                            }
                            Err(Refused::KeyInUse(back)) => {
                                prop_assert_eq!(back, value);
                                prop_assert!(model.contains_key(&key));
                            }
                            Err(Refused::Full(back)) => {
                                prop_assert_eq!(back, value);
                                prop_assert!(!model.contains_key(&key));
                                prop_assert_eq!(model.len(), limit);
                            }
                        }
                    }
                    Op::Take(key) => {
                        let got = waiters.take(&key);
                        prop_assert_eq!(got, model.remove(&key).map(|(value, _)| value));
                        if let Some(value) = got {
                            leave(value, &mut left);
                        }
                    }
                    Op::TakeIf(key, ready) => {
                        let got = waiters.take_if(&key, |_| ready);
                        let expected = if ready { model.remove(&key).map(|(value, _)| value) } else { None };
                        prop_assert_eq!(got, expected);
                        if let Some(value) = got {
                            leave(value, &mut left);
                        }
                    }
                    Op::Expire(by) => {
                        now += by;
                        for (key, value) in waiters.take_expired(at(now)) {
                            let (expected, deadline) = model.remove(&key).expect("expired a waiter nobody inserted");
                            prop_assert_eq!(value, expected);
                            prop_assert!(deadline <= now, "expired before its deadline");
                            leave(value, &mut left);
                        }
                        prop_assert!(model.values().all(|&(_, deadline)| deadline > now), "kept past its deadline");
                    }
                }
                prop_assert_eq!(waiters.has_room(), model.len() < limit);
                prop_assert_eq!(waiters.next_deadline(), model.values().map(|&(_, deadline)| at(deadline)).min());
            }
            // Whoever still waits leaves at the end of time.
            for (_, value) in waiters.take_expired(at(u64::MAX)) {
                leave(value, &mut left);
            }
            prop_assert_eq!(left, taken_in);
        }
    }
}
