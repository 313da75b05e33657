//! Warm pools, the pure part: the pool's definition and its validation, member names, what
//! one pass of the keeper should do with a pool's members, and the pool's figures. No I/O and
//! no clock: the host side lives in `host::pool`.

use serde::{Deserialize, Serialize};

use crate::spec::{self, MAX_NAME_LEN, SpecError, VirtualClusterSpec};

/// On a member's control-plane workload: the pool it was started for. It stays after a claim,
/// so a pool's claims can be counted.
pub const LABEL_POOL: &str = "vc.dev/pool";
/// On a claimed member's control-plane workload: the name its claimant gave it. `find` and
/// `list` go by this name; its host objects keep the member's own.
pub const LABEL_CLAIMED_AS: &str = "vc.dev/claimed-as";
/// When a member was claimed (RFC 3339); its TTL counts from then.
pub const ANNOTATION_CLAIMED_AT: &str = "vc.dev/claimed-at";
/// How long the claim took, in seconds, as the claimant measured it.
pub const ANNOTATION_CLAIM_SECONDS: &str = "vc.dev/claim-seconds";
/// How long the member took from its creation to ready, in seconds, as the keeper saw it.
pub const ANNOTATION_READY_SECONDS: &str = "vc.dev/ready-seconds";
/// On the ConfigMap that defines a pool: the pool's name.
pub const LABEL_POOL_DEFINITION: &str = "vc.dev/pool-definition";
/// On a namespace `vc pool create` made to hold pool definitions (value `"true"`): `vc pool
/// delete` removes it with the last pool in it.
pub const LABEL_POOL_NAMESPACE: &str = "vc.dev/pool-namespace";
/// The ConfigMap key that holds the pool's [`PoolSpec`] as JSON.
pub const POOL_SPEC_KEY: &str = "pool.json";
/// Where pool definitions live unless `-n` says otherwise.
pub const DEFAULT_POOL_NAMESPACE: &str = "vc-pools";
/// Length of the random part of a member's name (`<pool>-<suffix>`).
pub const MEMBER_SUFFIX_LEN: usize = 5;
/// Longest pool name: a member's name is the pool's plus `-` and the suffix.
pub const MAX_POOL_NAME_LEN: usize = MAX_NAME_LEN - MEMBER_SUFFIX_LEN - 1;

/// A pool of ready virtual clusters of one spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PoolSpec {
    /// How many unclaimed members the keeper keeps (ready, starting or paused).
    pub size: u32,
    /// How many members may be starting at once.
    pub max_surge: u32,
    /// Members are paused once ready, and resumed when claimed.
    #[serde(default)]
    pub paused: bool,
    /// The spec every member is created with.
    #[serde(default)]
    pub cluster: VirtualClusterSpec,
}

/// A pool definition that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(
        "invalid pool name {name:?}: {reason} (use lowercase letters, digits and '-', starting with a letter, at most {MAX_POOL_NAME_LEN} characters, so that member names fit)"
    )]
    Name { name: String, reason: String },
    #[error("--max-surge must be at least 1, got {0}")]
    MaxSurge(u32),
    #[error("--size must be at most {MAX_POOL_SIZE}, got {0}")]
    Size(u32),
    #[error(
        "pool members cannot be paused while they wait (--paused) when they are ephemeral (--ephemeral): a pause loses an emptyDir datastore; drop one of the two"
    )]
    PausedEphemeral,
    #[error(
        "pool members cannot share one Ingress host (expose.type: Ingress): each would claim the same name; expose them with NodePort or LoadBalancer instead"
    )]
    SharedIngress,
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// The largest pool `vc pool create` accepts: each member is a full control plane.
pub const MAX_POOL_SIZE: u32 = 100;

/// Checks a pool name: a cluster name short enough to take a member suffix.
pub fn validate_pool_name(name: &str) -> Result<(), PoolError> {
    let fail = |reason: String| PoolError::Name { name: name.to_string(), reason };
    if name.len() > MAX_POOL_NAME_LEN {
        return Err(fail(format!("it is {} characters long", name.len())));
    }
    spec::validate_name(name).map_err(|e| match e {
        SpecError::Name { reason, .. } => fail(reason),
        other => PoolError::Spec(other),
    })
}

impl PoolSpec {
    pub fn validate(&self) -> Result<(), PoolError> {
        if self.max_surge == 0 {
            return Err(PoolError::MaxSurge(self.max_surge));
        }
        if self.size > MAX_POOL_SIZE {
            return Err(PoolError::Size(self.size));
        }
        if self.paused && !self.cluster.persistent() {
            return Err(PoolError::PausedEphemeral);
        }
        self.cluster.validate()?;
        if self.cluster.expose.as_ref().is_some_and(|e| e.kind == spec::ExposeKind::Ingress) {
            return Err(PoolError::SharedIngress);
        }
        Ok(())
    }
}

/// A member's name from its pool's and a random suffix (lowercase letters and digits; the
/// caller supplies the random bytes).
pub fn member_name(pool: &str, random: &[u8; MEMBER_SUFFIX_LEN]) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String =
        random.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect();
    format!("{pool}-{suffix}")
}

/// What the keeper sees of one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberState {
    pub name: String,
    pub ready: bool,
    pub paused: bool,
    pub claimed: bool,
    pub deleting: bool,
}

impl MemberState {
    /// Ready to be claimed: running, or paused (a claim resumes it).
    pub fn warm(&self) -> bool {
        !self.claimed && !self.deleting && (self.ready || self.paused)
    }

    /// Started for the pool and not ready yet.
    pub fn starting(&self) -> bool {
        !self.claimed && !self.deleting && !self.ready && !self.paused
    }
}

/// What one pass of the keeper does with a pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefillPlan {
    /// New members to start now.
    pub start: u32,
    /// Ready members to pause (a paused pool).
    pub pause: Vec<String>,
    /// Unclaimed members beyond the pool's size (it shrank), starting ones first.
    pub remove: Vec<String>,
}

/// Plans one pass: start members until the pool holds `size` unclaimed ones, with at most
/// `max_surge` starting at once; pause ready ones in a paused pool; remove the excess of a pool
/// that shrank.
pub fn refill_plan(spec: &PoolSpec, members: &[MemberState]) -> RefillPlan {
    let warm: Vec<&MemberState> = members.iter().filter(|m| m.warm()).collect();
    let starting: Vec<&MemberState> = members.iter().filter(|m| m.starting()).collect();
    let held = u32::try_from(warm.len() + starting.len()).unwrap_or(u32::MAX);
    let starting_now = u32::try_from(starting.len()).unwrap_or(u32::MAX);
    let mut plan = RefillPlan::default();
    if held < spec.size {
        plan.start = (spec.size - held).min(spec.max_surge.saturating_sub(starting_now));
    }
    if held > spec.size {
        let excess = usize::try_from(held - spec.size).unwrap_or(usize::MAX);
        plan.remove = starting.iter().chain(&warm).take(excess).map(|m| m.name.clone()).collect();
    }
    if spec.paused {
        plan.pause = warm
            .iter()
            .filter(|m| m.ready && !m.paused && !plan.remove.contains(&m.name))
            .map(|m| m.name.clone())
            .collect();
    }
    plan
}

/// The nearest-rank percentile `p` (0 to 100) of sorted figures.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, ready: bool, paused: bool, claimed: bool) -> MemberState {
        MemberState { name: name.into(), ready, paused, claimed, deleting: false }
    }

    fn pool(size: u32, max_surge: u32, paused: bool) -> PoolSpec {
        PoolSpec { size, max_surge, paused, cluster: VirtualClusterSpec::default() }
    }

    #[test]
    fn an_empty_pool_starts_at_most_max_surge() {
        assert_eq!(refill_plan(&pool(5, 2, false), &[]).start, 2);
        assert_eq!(refill_plan(&pool(1, 3, false), &[]).start, 1);
    }

    #[test]
    fn starting_members_count_against_the_surge_and_the_size() {
        let members = [member("a", false, false, false), member("b", true, false, false)];
        // Two held of five, one starting: two more may start.
        assert_eq!(refill_plan(&pool(5, 3, false), &members).start, 2);
        // One starting of a surge of one: none.
        assert_eq!(refill_plan(&pool(5, 1, false), &members).start, 0);
    }

    #[test]
    fn claimed_and_deleting_members_are_replaced() {
        let mut gone = member("c", true, false, false);
        gone.deleting = true;
        let members = [member("a", true, false, true), member("b", true, false, false), gone];
        assert_eq!(refill_plan(&pool(2, 5, false), &members).start, 1);
    }

    #[test]
    fn a_full_pool_does_nothing_and_a_shrunk_one_removes_starting_members_first() {
        let members = [member("a", true, false, false), member("b", false, false, false)];
        assert_eq!(refill_plan(&pool(2, 1, false), &members), RefillPlan::default());
        let plan = refill_plan(&pool(1, 1, false), &members);
        assert_eq!(plan.remove, vec!["b".to_string()]);
        assert_eq!(plan.start, 0);
    }

    #[test]
    fn a_paused_pool_pauses_ready_members_and_counts_paused_ones_as_warm() {
        let members = [
            member("a", true, false, false),
            member("b", false, true, false),
            member("c", true, false, true),
        ];
        let plan = refill_plan(&pool(2, 1, true), &members);
        assert_eq!(plan.pause, vec!["a".to_string()]);
        assert_eq!(plan.start, 0);
    }

    #[test]
    fn member_names_fit_and_are_dns_labels() {
        let name = member_name("ci", &[0, 26, 27, 200, 255]);
        assert_eq!(name.len(), 2 + 1 + MEMBER_SUFFIX_LEN);
        spec::validate_name(&name).unwrap();
        let longest = "p".repeat(MAX_POOL_NAME_LEN);
        validate_pool_name(&longest).unwrap();
        spec::validate_name(&member_name(&longest, &[9; 5])).unwrap();
        assert!(validate_pool_name(&format!("{longest}p")).is_err());
        assert!(validate_pool_name("Bad").is_err());
    }

    #[test]
    fn a_pool_needs_a_surge_and_cannot_pause_ephemeral_members() {
        assert!(matches!(pool(2, 0, false).validate(), Err(PoolError::MaxSurge(0))));
        let mut ephemeral = pool(2, 1, true);
        ephemeral.cluster.persistence = Some(false);
        assert!(matches!(ephemeral.validate(), Err(PoolError::PausedEphemeral)));
        pool(2, 1, true).validate().unwrap();
        assert!(matches!(pool(MAX_POOL_SIZE + 1, 1, false).validate(), Err(PoolError::Size(_))));
        let mut exposed = pool(2, 1, false);
        exposed.cluster.expose = spec::parse_expose("ingress=ci.example.com").ok();
        assert!(matches!(exposed.validate(), Err(PoolError::SharedIngress)));
        exposed.cluster.expose = spec::parse_expose("nodeport").ok();
        exposed.validate().unwrap();
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let figures: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&figures, 50.0), Some(10.0));
        assert_eq!(percentile(&figures, 95.0), Some(19.0));
        assert_eq!(percentile(&figures, 100.0), Some(20.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
