//! The Kafka admin requests rust-rdkafka does not wrap: SCRAM credentials
//! (AlterUserScramCredentials) and ACLs (CreateAcls, DeleteAcls), through
//! librdkafka's C API on the client rust-rdkafka made. Each request runs on a
//! queue of its own and blocks until the broker answers (at most 35 s). Needs
//! a principal allowed to Alter the cluster: the init step's, or a super user.

use super::{KafkaAcl, KafkaOperation, KafkaResource};
use crate::{kafka, Config, Result, RuntimeError};
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;

const TIMEOUT_MS: i32 = 30_000;
/// SCRAM iterations (Kafka's minimum is 4096).
const SCRAM_ITERATIONS: i32 = 8192;

pub struct KafkaAdmin {
    client: AdminClient<DefaultClientContext>,
}

impl KafkaAdmin {
    pub fn new(config: &Config) -> Result<Self> {
        Ok(Self {
            client: kafka::client_config(config).create()?,
        })
    }

    /// Creates `user` or changes its password (SCRAM-SHA-512, random salt).
    pub fn upsert_scram_user(&self, user: &str, password: &str) -> Result<()> {
        let name = c_string(user)?;
        // SAFETY: the alteration is built from valid C strings and byte
        // slices that outlive the call; librdkafka copies what it keeps.
        let mut alterations = [unsafe {
            rd::rd_kafka_UserScramCredentialUpsertion_new(
                name.as_ptr(),
                rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
                SCRAM_ITERATIONS,
                password.as_ptr(),
                password.len(),
                ptr::null(),
                0,
            )
        }];
        self.alter_scram(&mut alterations, false)
    }

    /// Removes `user`'s SCRAM-SHA-512 credential; a user without one is fine.
    pub fn delete_scram_user(&self, user: &str) -> Result<()> {
        let name = c_string(user)?;
        // SAFETY: as in `upsert_scram_user`.
        let mut alterations = [unsafe {
            rd::rd_kafka_UserScramCredentialDeletion_new(
                name.as_ptr(),
                rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
            )
        }];
        self.alter_scram(&mut alterations, true)
    }

    fn alter_scram(
        &self,
        alterations: &mut [*mut rd::rd_kafka_UserScramCredentialAlteration_t],
        missing_is_fine: bool,
    ) -> Result<()> {
        let count = alterations.len();
        let result = self.request(
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
            // SAFETY: the alterations are valid until destroyed below.
            |rk, options, queue| unsafe {
                rd::rd_kafka_AlterUserScramCredentials(
                    rk,
                    alterations.as_mut_ptr(),
                    count,
                    options,
                    queue,
                )
            },
            // SAFETY: the event is a live AlterUserScramCredentials result.
            |event| unsafe {
                let result = rd::rd_kafka_event_AlterUserScramCredentials_result(event);
                let mut n = 0;
                let responses =
                    rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut n);
                for i in 0..n {
                    let response = *responses.add(i);
                    let error =
                        rd::rd_kafka_AlterUserScramCredentials_result_response_error(response);
                    let user = text(rd::rd_kafka_AlterUserScramCredentials_result_response_user(
                        response,
                    ));
                    check(error, missing_is_fine)
                        .map_err(|e| RuntimeError::Admin(format!("SCRAM user {user}: {e}")))?;
                }
                Ok(())
            },
        );
        // SAFETY: created above, not used after this.
        unsafe {
            rd::rd_kafka_UserScramCredentialAlteration_destroy_array(
                alterations.as_mut_ptr(),
                count,
            )
        };
        result
    }

    /// Allows `principal` (e.g. `User:gavel-sink`) each of `acls`, from any
    /// host. Creating an ACL that exists already changes nothing.
    pub fn create_acls(&self, principal: &str, acls: &[KafkaAcl]) -> Result<()> {
        if acls.is_empty() {
            return Ok(());
        }
        let principal = c_string(principal)?;
        let host = c_string("*")?;
        let mut bindings = Vec::with_capacity(acls.len());
        for acl in acls {
            bindings.push(binding(acl, &principal, &host)?);
        }
        let count = bindings.len();
        let result = self.request(
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            // SAFETY: the bindings are valid until destroyed below.
            |rk, options, queue| unsafe {
                rd::rd_kafka_CreateAcls(rk, bindings.as_mut_ptr(), count, options, queue)
            },
            // SAFETY: the event is a live CreateAcls result.
            |event| unsafe {
                let result = rd::rd_kafka_event_CreateAcls_result(event);
                let mut n = 0;
                let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut n);
                for i in 0..n {
                    check(rd::rd_kafka_acl_result_error(*results.add(i)), false).map_err(|e| {
                        RuntimeError::Admin(format!("creating ACL {:?}: {e}", acls.get(i)))
                    })?;
                }
                Ok(())
            },
        );
        // SAFETY: created above, not used after this.
        unsafe { rd::rd_kafka_AclBinding_destroy_array(bindings.as_mut_ptr(), count) };
        result
    }

    /// Removes every ACL of `principal`; returns how many there were.
    pub fn delete_acls(&self, principal: &str) -> Result<usize> {
        let principal = c_string(principal)?;
        let mut errstr = [0 as c_char; 256];
        // SAFETY: a filter matching any resource, operation and permission of
        // one principal; the strings outlive the call.
        let filter = unsafe {
            rd::rd_kafka_AclBindingFilter_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_ANY,
                ptr::null(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_ANY,
                principal.as_ptr(),
                ptr::null(),
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if filter.is_null() {
            return Err(RuntimeError::Admin(format!(
                "ACL filter: {}",
                text(errstr.as_ptr())
            )));
        }
        let mut filters = [filter];
        let result = self.request(
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
            // SAFETY: the filter is valid until destroyed below.
            |rk, options, queue| unsafe {
                rd::rd_kafka_DeleteAcls(rk, filters.as_mut_ptr(), 1, options, queue)
            },
            // SAFETY: the event is a live DeleteAcls result.
            |event| unsafe {
                let result = rd::rd_kafka_event_DeleteAcls_result(event);
                let mut n = 0;
                let responses = rd::rd_kafka_DeleteAcls_result_responses(result, &mut n);
                let mut deleted = 0;
                for i in 0..n {
                    let response = *responses.add(i);
                    check(
                        rd::rd_kafka_DeleteAcls_result_response_error(response),
                        false,
                    )?;
                    let mut matching = 0;
                    rd::rd_kafka_DeleteAcls_result_response_matching_acls(response, &mut matching);
                    deleted += matching;
                }
                Ok(deleted)
            },
        );
        // SAFETY: created above, not used after this.
        unsafe { rd::rd_kafka_AclBinding_destroy_array(filters.as_mut_ptr(), 1) };
        result
    }

    /// One admin request: `send` starts it on a queue of our own, `read`
    /// looks at the answer; blocks until it comes or the request times out.
    fn request<T>(
        &self,
        op: rd::rd_kafka_admin_op_t,
        send: impl FnOnce(
            *mut rd::rd_kafka_t,
            *const rd::rd_kafka_AdminOptions_t,
            *mut rd::rd_kafka_queue_t,
        ),
        read: impl FnOnce(*mut rd::rd_kafka_event_t) -> Result<T>,
    ) -> Result<T> {
        let rk = self.client.inner().native_ptr();
        let mut errstr = [0 as c_char; 256];
        // SAFETY: rk is the live client this struct owns; the queue, options
        // and event are created, used and destroyed here, each once.
        unsafe {
            let queue = rd::rd_kafka_queue_new(rk);
            let options = rd::rd_kafka_AdminOptions_new(rk, op);
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options,
                TIMEOUT_MS,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            send(rk, options, queue);
            rd::rd_kafka_AdminOptions_destroy(options);
            let event = rd::rd_kafka_queue_poll(queue, TIMEOUT_MS + 5_000);
            let result = if event.is_null() {
                Err(RuntimeError::Admin(
                    "Kafka did not answer an admin request within 35 s".into(),
                ))
            } else if rd::rd_kafka_event_error(event)
                != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                Err(RuntimeError::Admin(text(rd::rd_kafka_event_error_string(
                    event,
                ))))
            } else {
                read(event)
            };
            if !event.is_null() {
                rd::rd_kafka_event_destroy(event);
            }
            rd::rd_kafka_queue_destroy(queue);
            result
        }
    }
}

/// A librdkafka ACL binding (allow, from `host`) for one of our ACLs.
fn binding(
    acl: &KafkaAcl,
    principal: &CString,
    host: &CString,
) -> Result<*mut rd::rd_kafka_AclBinding_t> {
    use rd::rd_kafka_AclOperation_t as Op;
    use rd::rd_kafka_ResourcePatternType_t as Pattern;
    use rd::rd_kafka_ResourceType_t as Resource;
    let resource = match acl.resource {
        KafkaResource::Topic => Resource::RD_KAFKA_RESOURCE_TOPIC,
        KafkaResource::Group => Resource::RD_KAFKA_RESOURCE_GROUP,
        KafkaResource::TransactionalId => Resource::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
    };
    let pattern = if acl.prefixed {
        Pattern::RD_KAFKA_RESOURCE_PATTERN_PREFIXED
    } else {
        Pattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL
    };
    let operation = match acl.operation {
        KafkaOperation::Read => Op::RD_KAFKA_ACL_OPERATION_READ,
        KafkaOperation::Write => Op::RD_KAFKA_ACL_OPERATION_WRITE,
        KafkaOperation::Describe => Op::RD_KAFKA_ACL_OPERATION_DESCRIBE,
        KafkaOperation::Create => Op::RD_KAFKA_ACL_OPERATION_CREATE,
    };
    let name = c_string(&acl.name)?;
    let mut errstr = [0 as c_char; 256];
    // SAFETY: valid C strings that outlive the call; librdkafka copies them.
    let binding = unsafe {
        rd::rd_kafka_AclBinding_new(
            resource,
            name.as_ptr(),
            pattern,
            principal.as_ptr(),
            host.as_ptr(),
            operation,
            rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if binding.is_null() {
        return Err(RuntimeError::Admin(format!(
            "ACL {acl:?}: {}",
            text(errstr.as_ptr())
        )));
    }
    Ok(binding)
}

/// `Err` with librdkafka's words for a set error; a missing resource passes
/// when `missing_is_fine`.
fn check(error: *const rd::rd_kafka_error_t, missing_is_fine: bool) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error object owned by the result event.
    let (code, message) = unsafe {
        (
            rd::rd_kafka_error_code(error),
            text(rd::rd_kafka_error_string(error)),
        )
    };
    match code {
        rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
        rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_RESOURCE_NOT_FOUND if missing_is_fine => Ok(()),
        _ => Err(RuntimeError::Admin(message)),
    }
}

fn c_string(value: &str) -> Result<CString> {
    CString::new(value).map_err(|_| RuntimeError::Admin(format!("{value:?} contains a NUL byte")))
}

/// A C string from librdkafka as text ("" for null).
fn text(raw: *const c_char) -> String {
    if raw.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka returns NUL-terminated strings that live as long
    // as the object they came from, which the caller still holds.
    unsafe { CStr::from_ptr(raw) }
        .to_string_lossy()
        .into_owned()
}
