//! The restart bookkeeping of one supervisor's children, OTP-style and generic over how a child
//! is named (`K`: a job id for the Supervisor, a customer id for the JobActor). Per child it
//! keeps the incarnation now current (so the end of a replaced one is recognized as stale), the
//! [`RestartHistory`] the policy judges, and whether the child is waiting out its backoff (a
//! child that is neither running nor restarted yet, which both supervisors still count). The
//! supervisor keeps what the child *is* (its address, its job); this keeps how it has fared.

use std::{collections::HashMap, hash::Hash};

use super::{RestartHistory, RestartPolicy, Verdict};

/// One child's record.
#[derive(Debug, Default)]
struct Child {
    incarnation: u64,
    history: RestartHistory,
    backing_off: bool,
}

/// Every child of one supervisor, under one [`RestartPolicy`].
#[derive(Debug)]
pub struct Children<K> {
    policy: RestartPolicy,
    /// The last incarnation handed out, to any child: numbers are never reused, not even by a
    /// child that left and came back, so a stale end can never pass for a current one.
    last_incarnation: u64,
    children: HashMap<K, Child>,
    /// Children with `backing_off` set, kept so counting them is free.
    backing_off: usize,
}

impl<K: Eq + Hash> Children<K> {
    pub fn new(policy: RestartPolicy) -> Self {
        Self {
            policy,
            last_incarnation: 0,
            children: HashMap::new(),
            backing_off: 0,
        }
    }

    pub fn policy(&self) -> &RestartPolicy {
        &self.policy
    }

    /// A child starts afresh (no failures on record); returns its incarnation.
    pub fn start(&mut self, key: K) -> u64 {
        let incarnation = self.next_incarnation();
        let old = self.children.insert(
            key,
            Child {
                incarnation,
                ..Child::default()
            },
        );
        if old.is_some_and(|child| child.backing_off) {
            self.backing_off -= 1;
        }
        incarnation
    }

    /// The child failed: whatever its current incarnation still says is stale from now on.
    /// Returns the incarnation that replaces it and the policy's verdict; on a restart the
    /// child is backing off until [`Children::restarted`].
    pub fn failed(&mut self, key: K) -> (u64, Verdict) {
        let incarnation = self.next_incarnation();
        let child = self.children.entry(key).or_default();
        child.incarnation = incarnation;
        let verdict = child.history.failed(&self.policy);
        if matches!(verdict, Verdict::Restart { .. }) && !child.backing_off {
            child.backing_off = true;
            self.backing_off += 1;
        }
        (incarnation, verdict)
    }

    /// The child's backoff is over (it was started again, or will not be).
    pub fn restarted(&mut self, key: &K) {
        if let Some(child) = self.children.get_mut(key)
            && std::mem::take(&mut child.backing_off)
        {
            self.backing_off -= 1;
        }
    }

    /// Forgets the child: it left for good.
    pub fn remove(&mut self, key: &K) {
        if self
            .children
            .remove(key)
            .is_some_and(|child| child.backing_off)
        {
            self.backing_off -= 1;
        }
    }

    /// Whether `incarnation` is the child's current one (false for a child not on record).
    pub fn is_current(&self, key: &K, incarnation: u64) -> bool {
        self.children
            .get(key)
            .is_some_and(|child| child.incarnation == incarnation)
    }

    /// Restarts over the child's whole life (0 for a child not on record).
    pub fn restarts(&self, key: &K) -> u32 {
        self.children
            .get(key)
            .map_or(0, |child| child.history.total)
    }

    pub fn is_backing_off(&self, key: &K) -> bool {
        self.children
            .get(key)
            .is_some_and(|child| child.backing_off)
    }

    /// Children waiting out their backoff.
    pub fn backing_off(&self) -> usize {
        self.backing_off
    }

    fn next_incarnation(&mut self) -> u64 {
        self.last_incarnation += 1;
        self.last_incarnation
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(max_restarts: u32) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        }
    }

    /// A verdict without its jittered delay: `Ok(restarts)` or `Err(failures)`.
    fn shape(verdict: Verdict) -> Result<u32, u32> {
        match verdict {
            Verdict::Restart { restarts, .. } => Ok(restarts),
            Verdict::Escalate { failures } => Err(failures),
        }
    }

    #[test]
    fn a_child_is_restarted_up_to_the_intensity_then_escalated() {
        let cases: [(u32, &[Result<u32, u32>]); 3] = [
            (0, &[Err(1), Err(1)]),
            (1, &[Ok(1), Err(2), Err(2)]),
            (3, &[Ok(1), Ok(2), Ok(3), Err(4)]),
        ];
        for (max_restarts, expected) in cases {
            let mut children = Children::new(policy(max_restarts));
            children.start("a");
            let verdicts: Vec<_> = expected
                .iter()
                .map(|_| shape(children.failed("a").1))
                .collect();
            assert_eq!(verdicts, expected, "max_restarts = {max_restarts}");
            assert_eq!(children.restarts(&"a"), max_restarts);
        }
    }

    #[test]
    fn children_are_judged_apart() {
        let mut children = Children::new(policy(1));
        assert_eq!(shape(children.failed("a").1), Ok(1));
        assert_eq!(shape(children.failed("a").1), Err(2));
        assert_eq!(
            shape(children.failed("b").1),
            Ok(1),
            "b has its own history"
        );
        assert_eq!(children.restarts(&"b"), 1);
        assert_eq!(children.restarts(&"never failed"), 0);
    }

    #[test]
    fn a_failure_makes_the_incarnation_before_it_stale() {
        let mut children = Children::new(policy(3));
        let first = children.start("a");
        assert!(children.is_current(&"a", first));
        let (second, _) = children.failed("a");
        assert!(!children.is_current(&"a", first));
        assert!(children.is_current(&"a", second));
        assert!(!children.is_current(&"b", second), "not on record");
    }

    #[test]
    fn incarnations_are_never_reused() {
        let mut children = Children::new(policy(3));
        let a = children.start("a");
        let b = children.start("b");
        children.remove(&"a");
        let a_again = children.start("a");
        assert!(a < b && b < a_again, "{a} {b} {a_again}");
        assert_eq!(children.restarts(&"a"), 0, "back with a clean record");
    }

    #[test]
    fn backing_off_lasts_from_a_restart_verdict_until_restarted() {
        enum Step {
            Fail(&'static str),
            Restarted(&'static str),
            Remove(&'static str),
        }
        use Step::*;
        let mut children = Children::new(policy(1));
        // (step, children backing off afterwards, whether "a" is)
        let steps = [
            (Fail("a"), 1, true),
            (Fail("b"), 2, true),
            (Restarted("a"), 1, false),
            (Restarted("a"), 1, false),
            (Fail("a"), 1, false), // escalated: nothing to wait for
            (Remove("b"), 0, false),
        ];
        for (i, (step, count, a_backing_off)) in steps.into_iter().enumerate() {
            match step {
                Fail(key) => {
                    let _ = children.failed(key);
                }
                Restarted(key) => children.restarted(&key),
                Remove(key) => children.remove(&key),
            }
            assert_eq!(children.backing_off(), count, "after step {i}");
            assert_eq!(
                children.is_backing_off(&"a"),
                a_backing_off,
                "after step {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_older_than_the_window_are_forgiven() {
        // (wait before the failure, expected verdict) with at most one restart per 60 s.
        let cases = [
            (Duration::ZERO, Ok(1)),
            (Duration::from_secs(59), Err(2)),
            (Duration::from_secs(2), Ok(2)),
        ];
        let mut children = Children::new(policy(1));
        for (wait, expected) in cases {
            tokio::time::advance(wait).await;
            assert_eq!(shape(children.failed("a").1), expected, "after {wait:?}");
        }
    }
}
