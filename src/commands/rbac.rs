//! `vc rbac NAMESPACE --user U|--group G|--service-account NS/SA`: prints the Roles and
//! RoleBindings a cluster admin applies once so that user can run `vc` in that namespace (and
//! read the host API server's endpoints in `default`).
//! Contacts nothing.

use crate::cli::{OutputFormat, RbacArgs};
use crate::commands::Invocation;
use crate::engine;
use crate::engine::rbac::{self, Grantee};
use crate::error::CliError;
use crate::spec;

pub fn run(invocation: &Invocation, args: &RbacArgs) -> anyhow::Result<()> {
    spec::validate_namespace(&args.namespace)?;
    let grantee = grantee(args)?;
    let list = engine::as_list(&rbac::grant(&args.namespace, &grantee).objects());
    let printer = &invocation.printer;
    match printer.format {
        OutputFormat::Json => printer.structured_value(&list),
        _ => {
            printer.data(&crate::output::to_yaml(&list)?);
            Ok(())
        }
    }
}

fn grantee(args: &RbacArgs) -> anyhow::Result<Grantee> {
    let empty = |flag: &str| CliError::usage(format!("{flag} needs a value"));
    if let Some(user) = &args.user {
        return if user.is_empty() {
            Err(empty("--user").into())
        } else {
            Ok(Grantee::User(user.clone()))
        };
    }
    if let Some(group) = &args.group {
        return if group.is_empty() {
            Err(empty("--group").into())
        } else {
            Ok(Grantee::Group(group.clone()))
        };
    }
    let account = args.service_account.as_deref().unwrap_or_default();
    match account.split_once('/') {
        Some((namespace, name))
            if !name.is_empty() && spec::validate_namespace(namespace).is_ok() =>
        {
            Ok(Grantee::ServiceAccount { namespace: namespace.to_string(), name: name.to_string() })
        }
        _ => Err(CliError::usage(format!(
            "invalid --service-account {account:?}: use NAMESPACE/NAME, such as ci/runner"
        ))
        .into()),
    }
}
