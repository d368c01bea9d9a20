//! The Kafka half of the access table as Strimzi `KafkaUser` resources: one
//! SCRAM user per role with exactly its ACLs. `gavel access strimzi` prints
//! them for deploy/k8s/strimzi/users.yaml, and a unit test fails when that
//! file and the table disagree.

use super::{deployed_user, AccessTable, KafkaAcl, KafkaOperation, KafkaResource};
use crate::{Config, Result};

/// Every role with Kafka rights as a KafkaUser, under `config`'s names.
pub fn kafka_users(table: &AccessTable, config: &Config) -> Result<String> {
    let mut out = String::from(HEADER);
    for role in table.roles() {
        let rights = table.rights(role, config)?;
        if rights.kafka.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "---\napiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaUser\nmetadata:\n  name: {}\nspec:\n  authentication:\n    type: scram-sha-512\n  authorization:\n    type: simple\n    acls:\n",
            deployed_user(role)
        ));
        for (acl, operations) in merged(&rights.kafka) {
            let kind = match acl.resource {
                KafkaResource::Topic => "topic",
                KafkaResource::Group => "group",
                KafkaResource::TransactionalId => "transactionalId",
            };
            let pattern = if acl.prefixed { "prefix" } else { "literal" };
            out.push_str(&format!(
                "      - resource: {{type: {kind}, name: {}, patternType: {pattern}}}\n        operations: [{}]\n",
                acl.name,
                operations.join(", ")
            ));
        }
    }
    Ok(out)
}

/// The ACLs of one resource pattern together: Strimzi lists the operations
/// of a resource in one entry.
fn merged(acls: &[KafkaAcl]) -> Vec<(&KafkaAcl, Vec<&'static str>)> {
    let mut merged: Vec<(&KafkaAcl, Vec<&'static str>)> = Vec::new();
    for acl in acls {
        let operation = match acl.operation {
            KafkaOperation::Read => "Read",
            KafkaOperation::Write => "Write",
            KafkaOperation::Describe => "Describe",
            KafkaOperation::Create => "Create",
        };
        let same = |(other, _): &&mut (&KafkaAcl, Vec<&'static str>)| {
            other.resource == acl.resource
                && other.name == acl.name
                && other.prefixed == acl.prefixed
        };
        match merged.iter_mut().find(same) {
            Some((_, operations)) => operations.push(operation),
            None => merged.push((acl, vec![operation])),
        }
    }
    merged
}

const HEADER: &str =
    "# GENERATED from deploy/access.txt by `gavel access strimzi` (with the names of
# deploy/k8s/base/config.env, the binary's defaults); a unit test fails when the two
# disagree. One SCRAM-SHA-512 user per role with only that role's ACLs: Read and Write
# imply Describe. Strimzi writes each password into Secret gavel-<role> in the Kafka
# namespace; the production overlay expects it in Secret gavel-role-<role> in namespace gavel.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_kafka_users_are_the_access_tables() {
        let committed = include_str!("../../../deploy/k8s/strimzi/users.yaml");
        let table = AccessTable::builtin().unwrap();
        let generated = kafka_users(&table, &Config::defaults().unwrap()).unwrap();
        assert!(
            committed == generated,
            "deploy/k8s/strimzi/users.yaml is stale: run `gavel access strimzi > deploy/k8s/strimzi/users.yaml`"
        );
    }
}
