use super::*;

fn config() -> Config {
    Config::defaults().expect("defaults")
}

fn writes(rights: &RoleRights) -> Vec<&str> {
    rights
        .kafka
        .iter()
        .filter(|a| a.resource == KafkaResource::Topic && a.operation == KafkaOperation::Write)
        .map(|a| a.name.as_str())
        .collect()
}

#[test]
fn the_builtin_table_parses_and_names_every_deployed_role() {
    let table = AccessTable::builtin().expect("deploy/access.txt parses");
    for role in [
        "aggregate",
        "project",
        "sink",
        "event-store",
        "saga-payment",
        "saga-order",
        "participants",
        "outbox-relay",
        "command-api",
        "query-api",
        "lag-exporter",
        "init",
        "rebuild",
        "audit",
    ] {
        assert!(table.roles().contains(&role), "{role} missing");
        table.rights(role, &config()).expect("rights render");
    }
    assert!(table.rights("nobody", &config()).is_err());
}

#[test]
fn the_internet_facing_apis_write_only_what_they_must() {
    let table = AccessTable::builtin().unwrap();
    let command_api = table.rights("command-api", &config()).unwrap();
    assert_eq!(writes(&command_api), ["auction.commands", "order.events"]);
    let query_api = table.rights("query-api", &config()).unwrap();
    assert!(writes(&query_api).is_empty(), "{query_api:?}");
    assert!(query_api.postgres.iter().all(|r| matches!(
        r,
        PostgresRight::Table { privileges, .. } if privileges == &["SELECT"]
    )));
    assert_eq!(query_api.registry, Some(RegistryRight::Read));
    let sink = table.rights("sink", &config()).unwrap();
    assert!(
        writes(&sink).iter().all(|t| t.ends_with(".dlq")),
        "{sink:?}"
    );
}

#[test]
fn names_follow_the_configuration_and_placeholders_expand() {
    let isolated = config().isolated("t42");
    let table = AccessTable::builtin().unwrap();
    let participants = table.rights("participants", &isolated).unwrap();
    let reads: Vec<&str> = participants
        .kafka
        .iter()
        .filter(|a| a.operation == KafkaOperation::Read && a.resource == KafkaResource::Topic)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(reads.len(), gavel_domain::saga::Participant::ALL.len());
    assert!(
        reads.contains(&"t42.saga.participant.payment.commands"),
        "{reads:?}"
    );
    let groups: Vec<&KafkaAcl> = participants
        .kafka
        .iter()
        .filter(|a| a.resource == KafkaResource::Group)
        .collect();
    assert_eq!(groups.len(), 1);
    assert!(groups[0].prefixed && groups[0].name == "t42-saga-participant-");
    let init = table.rights("init", &isolated).unwrap();
    let creates = init
        .kafka
        .iter()
        .filter(|a| a.operation == KafkaOperation::Create);
    assert_eq!(
        creates.count(),
        crate::kafka::auction_topic_names(&isolated).len()
    );
    assert_eq!(init.registry, Some(RegistryRight::Write));
}

#[test]
fn bad_lines_are_refused_with_their_number() {
    for (text, expected) in [
        ("sink kafka topic:x", "line 1"),
        ("sink kafka topic:x Eat", "unknown Kafka operation"),
        ("sink ldap x read", "unknown system"),
        ("sink postgres table:s.t DROP", "table"),
        ("sink kafka topic:{nope} Read", "unknown placeholder"),
    ] {
        let error = AccessTable::parse(text)
            .and_then(|t| t.rights("sink", &config()))
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn grants_cover_every_table_right_with_schema_usage() {
    let table = AccessTable::builtin().unwrap();
    let config = config().isolated("t7");
    let grants = postgres_grants::grants(&table, &config, None).unwrap();
    let of = |role: &str| -> Vec<&str> {
        grants
            .iter()
            .filter(|g| g.role == role)
            .map(|g| g.sql.as_str())
            .collect()
    };
    assert_eq!(
        of("gavel_query_api"),
        [
            "GRANT USAGE ON SCHEMA t7 TO gavel_query_api",
            "GRANT SELECT ON TABLE t7.auction_details TO gavel_query_api",
            "GRANT SELECT ON TABLE t7.auction_list TO gavel_query_api",
            "GRANT SELECT ON TABLE t7.user_bids TO gavel_query_api",
        ]
    );
    assert!(of("gavel_init").is_empty(), "the owner needs no grants");
    let one = postgres_grants::grants(&table, &config, Some("t7.user_bids")).unwrap();
    assert!(one
        .iter()
        .all(|g| g.sql.contains("user_bids") || g.sql.contains("SCHEMA")));
    assert_eq!(postgres_role("event-store"), "gavel_event_store");
}
