//! Leader election over a `coordination.k8s.io` Lease, so two replicas never both reconcile:
//! the holder renews it; another takes it only once it has not been renewed for its duration.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// Name of the Lease the operator holds (in its namespace); `vc create` looks for it.
pub const LEASE_NAME: &str = "vc-operator";

/// A Lease this process competes for.
pub struct LeaseLock {
    api: Api<Lease>,
    pub identity: String,
    pub duration: Duration,
}

/// Who holds a Lease, as `vc create` reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub identity: String,
    /// Whether it was renewed within its duration.
    pub live: bool,
}

/// The holder of `lease` at `now`, if any.
pub fn holder(lease: &Lease, now: jiff::Timestamp) -> Option<Holder> {
    let spec = lease.spec.as_ref()?;
    let identity = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    let live = spec
        .renew_time
        .as_ref()
        .is_some_and(|t| t.0 + jiff::SignedDuration::from_secs(duration) > now);
    Some(Holder { identity, live })
}

impl LeaseLock {
    pub fn new(client: kube::Client, namespace: &str, identity: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), identity: identity.to_string(), duration }
    }

    fn spec(
        &self,
        now: jiff::Timestamp,
        acquired: Option<MicroTime>,
        transitions: i32,
    ) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease; false when another live holder has it (or won a race).
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let current = holder(&lease, now);
        let ours = current.as_ref().is_some_and(|h| h.identity == self.identity);
        if current.as_ref().is_some_and(|h| h.live && !ours) {
            return Ok(false);
        }
        let old = lease.spec.clone().unwrap_or_default();
        let (acquired, transitions) = if ours {
            (old.acquire_time, old.lease_transitions.unwrap_or(0))
        } else {
            (None, old.lease_transitions.unwrap_or(0) + 1)
        };
        lease.spec = Some(self.spec(now, acquired, transitions));
        // The resourceVersion read above makes this a compare-and-swap.
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up at shutdown, so another replica takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else { return Ok(()) };
        let now = jiff::Timestamp::now();
        if holder(&lease, now).is_none_or(|h| h.identity != self.identity) {
            return Ok(());
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = None;
        }
        match self.api.replace(LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }
}
