//! `vc extend NAME --ttl D | --until TIME`: moves a cluster's expiry (`vc.dev/expires-at`),
//! counted from now, so `vc gc` and `vc list` see the new one.

use serde::Serialize;

use crate::cli::{ExtendArgs, OutputFormat};
use crate::commands::Invocation;
use crate::error::CliError;
use crate::operator::{lifecycle, requests};

/// JSON result of `vc extend -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtendResult {
    name: String,
    namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_expires_at: Option<String>,
    expires_at: String,
}

pub async fn run(invocation: &Invocation, args: ExtendArgs) -> anyhow::Result<()> {
    let printer = &invocation.printer;
    crate::spec::validate_name(&args.name)?;
    if let Some(ns) = &invocation.global.namespace {
        crate::spec::validate_namespace(ns)?;
    }
    let now = invocation.now()?;
    let expires_at = match (&args.ttl, &args.until) {
        (Some(ttl), _) => {
            let ttl = crate::spec::parse_ttl(ttl)?;
            let span = jiff::SignedDuration::try_from(ttl).map_err(|_| {
                CliError::usage(format!(
                    "--ttl {:?} is too long",
                    args.ttl.as_deref().unwrap_or_default()
                ))
            })?;
            now.checked_add(span)
                .map_err(|_| CliError::usage("--ttl reaches past the year 9999"))?
        }
        (None, Some(until)) => {
            let at: jiff::Timestamp = until.parse().map_err(|_| {
                CliError::usage(format!(
                    "--until {until:?} is not an RFC 3339 time: use one such as 2030-01-01T00:00:00Z"
                ))
            })?;
            if at <= now {
                return Err(CliError::usage(format!(
                    "--until {until} is not in the future (now is {now}); to remove the cluster use: vc delete {}",
                    args.name
                ))
                .into());
            }
            at
        }
        (None, None) => return Err(CliError::usage("pass --ttl DURATION or --until TIME").into()),
    };
    let host = invocation.host().await?;
    let record = host.find(&args.name, invocation.global.namespace.as_deref()).await?;
    if record.deleting {
        return Err(CliError::conflict(format!(
            "virtual cluster {:?} in namespace {:?} is being deleted; its expiry cannot move",
            record.name, record.namespace
        ))
        .into());
    }
    let expires_at = match &record.virtual_cluster {
        Some(owner) => extend_through_object(&host, &record, owner, expires_at).await?,
        None => {
            host.set_expiry(&record, expires_at).await?;
            expires_at
        }
    };
    let result = ExtendResult {
        name: record.name.clone(),
        namespace: record.namespace.clone(),
        previous_expires_at: record.expires_at.map(|t| t.to_string()),
        expires_at: expires_at.to_string(),
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml => printer.structured_value(&result)?,
        OutputFormat::Name => printer.data(&result.name),
        OutputFormat::Table => {
            let was = record.expires_at.map_or_else(
                || " (it had no expiry; vc gc will now delete it once this passes)".to_string(),
                |t| format!(" (was {t})"),
            );
            printer.info(&format!(
                "virtual cluster {:?} now expires at {expires_at}{was}",
                record.name
            ));
        }
    }
    Ok(())
}

/// How long `vc extend` waits for the operator to take a new `spec.ttl` up.
const OPERATOR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Rewrites the VirtualCluster's `spec.ttl` (counted from its creation, rounded up to a whole
/// second) so that it expires at `until`, and waits until its operator reports the new
/// expiry. Returns the expiry as the object now says.
async fn extend_through_object(
    host: &crate::host::Host,
    record: &crate::host::ClusterRecord,
    owner: &str,
    until: jiff::Timestamp,
) -> anyhow::Result<jiff::Timestamp> {
    let namespace = record.namespace.as_str();
    requests::require_operator(host, owner, namespace).await?;
    let object = requests::read(host, namespace, owner).await?;
    let created = object.metadata.creation_timestamp.as_ref().map(|t| t.0).ok_or_else(|| {
        CliError::new(
            crate::error::Exit::Failure,
            format!("VirtualCluster {namespace}/{owner} has no creation time"),
        )
    })?;
    let ttl = lifecycle::ttl_reaching(created, until).ok_or_else(|| {
        CliError::usage(format!("{until} is not after the VirtualCluster's creation ({created})"))
    })?;
    requests::request_ttl(host, namespace, owner, &ttl).await?;
    let expected = created
        + jiff::SignedDuration::try_from(crate::spec::parse_ttl(&ttl)?)
            .map_err(|_| CliError::usage(format!("ttl {ttl} is too long")))?;
    let want = expected.to_string();
    let taken = requests::wait_status(host, namespace, owner, |o| {
        o.status.as_ref().and_then(|s| s.expires_at.as_deref()) == Some(want.as_str())
    });
    tokio::time::timeout(OPERATOR_WAIT, taken).await.map_err(|_| {
        CliError::timeout(format!(
            "VirtualCluster {namespace}/{owner} now has spec.ttl {ttl} (expiring at {expected}), but its operator had not taken it up after {}s; check: kubectl get vcl {owner} -n {namespace}",
            OPERATOR_WAIT.as_secs()
        ))
    })??;
    Ok(expected)
}
