//! Every error text a client can see, in one place.
//!
//! Client libraries and test suites match on these strings, so each is Redis 7's exact text.
//! Handlers return `Err(CommandError)`; the dispatcher writes it as `-<text>\r\n`.

use std::borrow::Cow;
use std::fmt;

pub const WRONG_TYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// To a client blocked in XREADGROUP whose stream was deleted or replaced by another type.
pub const STREAM_GONE: &str = "UNBLOCKED the stream key no longer exists";
/// To a client blocked in XREADGROUP whose group was destroyed (or whose stream was recreated).
pub const GROUP_GONE: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// Redis's bare `-ERR` (a failed SAVE).
pub const ERR_PLAIN: &str = "ERR";
pub const SYNTAX: &str = "ERR syntax error";
pub const SSUBSCRIBE_DENY_BLOCKING: &str =
    "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const DB_INDEX: &str = "ERR DB index is out of range";
pub const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// To a client from a non-local address while protected mode is on and the default user
/// has no password; the connection closes after it.
pub const DENIED_PROTECTED_MODE: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";
/// CONFIG SET of a `tls-*` parameter whose configuration does not load.
pub const TLS_UPDATE_FAILED: &str = "Unable to update TLS configuration. Check server logs.";
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
pub const CLUSTERDOWN: &str = "CLUSTERDOWN The cluster is down";
pub const CLUSTERDOWN_READONLY: &str =
    "CLUSTERDOWN The cluster is down and only accepts read commands";
pub const CLUSTERDOWN_UNBOUND: &str = "CLUSTERDOWN Hash slot not served";
pub const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// ACL refusals of a client's command (the command refusal names it, see `command::acl`).
pub const NOPERM_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";
pub const NOPERM_CHANNEL: &str =
    "NOPERM this user has no permissions to access one of the channels used as arguments";
/// ACL refusals of a queued command when EXEC runs it: the rules changed since it was queued.
pub const NOPERM_EXEC_COMMAND: &str = "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to execute the command or subcommand";
pub const NOPERM_EXEC_KEY: &str = "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to touch the specified keys";
pub const NOPERM_EXEC_CHANNEL: &str = "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: no permission to access one of the channels used as arguments";
/// SORT's BY and GET patterns for a user who may not read every key.
pub const SORT_BY_ACL: &str = "ERR BY option of SORT denied due to insufficient ACL permissions.";
pub const SORT_GET_ACL: &str = "ERR GET option of SORT denied due to insufficient ACL permissions.";
/// ACL refusals of `redis.call` from a script.
pub const SCRIPT_ACL_COMMAND: &str =
    "ERR The user executing the script can't run this command or subcommand";
pub const SCRIPT_ACL_KEY: &str = "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments";
pub const SCRIPT_ACL_CHANNEL: &str =
    "ERR The user executing the script can't publish to the channel mentioned in the command";
pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_RANGE: &str = "ERR offset is out of range";
pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const NO_SUCH_CLIENT: &str = "ERR No such client";
/// HELLO before authenticating, without its AUTH option.
pub const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const PROTOVER_NOT_INT: &str = "ERR Protocol version is not an integer or out of range";
pub const INVALID_CLIENT_ID: &str = "ERR Invalid client ID";
pub const CLIENT_ID_NOT_POSITIVE: &str = "ERR client-id should be greater than 0";
/// CLIENT KILL MAXAGE (Redis 7.4) with a non-integer.
pub const MAXAGE_NOT_INT: &str = "ERR maxage is not an integer or out of range";
/// COMMAND GETKEYS errors.
pub const GETKEYS_NO_COMMAND: &str = "ERR Invalid command specified";
pub const GETKEYS_NO_KEYS: &str = "ERR The command has no key arguments";
pub const GETKEYS_ARITY: &str = "ERR Invalid number of arguments specified for command";
pub const GETKEYS_INVALID: &str = "ERR Invalid arguments specified for command";
/// DECRBY with the one decrement that cannot be negated (i64::MIN).
pub const DECR_OVERFLOW: &str = "ERR decrement would overflow";
pub const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
pub const LCS_IDX_AND_LEN: &str =
    "ERR If you want both the length and indexes, please just use IDX.";
pub const LCS_TOO_LONG: &str = "ERR String too long for LCS";
pub const LCS_TABLE_TOO_BIG: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
pub const LCS_NO_MEMORY: &str =
    "ERR Insufficient memory, failed allocating transient memory for LCS";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
/// `getIntFromObjectOrReply` for a valid integer outside the C `int` range (MOVE, COPY DB).
pub const INT_RANGE: &str =
    "ERR value is out of range, value must between -2147483648 and 2147483647";
pub const EXPIRE_NX_AND_OTHERS: &str =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const EXPIRE_GT_AND_LT: &str = "ERR GT and LT options at the same time are not compatible";
pub const LFU_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const LFU_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
/// SWAPDB with an index that is not an integer in the C `int` range.
pub const INVALID_FIRST_DB: &str = "ERR invalid first DB index";
pub const INVALID_SECOND_DB: &str = "ERR invalid second DB index";
/// `getPositiveLongFromObjectOrReply` (DEBUG POPULATE).
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
/// A command touching the keyspace from a client in MONITOR mode (a replica to Redis).
pub const MONITOR_KEYSPACE: &str = "ERR Replica can't interact with the keyspace";
pub const MONITOR_DENY_BLOCKING: &str = "ERR MONITOR isn't allowed for DENY BLOCKING client";
pub const SLOWLOG_COUNT: &str = "ERR count should be greater than or equal to -1";
pub const NO_SAMPLES: &str = "ERR No samples available for event";
pub const NO_SHUTDOWN_IN_PROGRESS: &str = "ERR No shutdown in progress.";
pub const NO_CONFIG_FILE: &str = "ERR The server is running without a config file";
/// DEBUG while `enable-debug-command` does not allow it for this connection.
pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";
/// DEBUG LISTPACK / QUICKLIST / SDSLEN / HTSTATS-KEY on a value of another encoding.
pub const DEBUG_NOT_LISTPACK: &str = "ERR Not a listpack encoded object.";
pub const DEBUG_NOT_QUICKLIST: &str = "ERR Not a quicklist encoded object.";
pub const DEBUG_NOT_SDS: &str = "ERR Not an sds encoded string.";
pub const DEBUG_NOT_HASH_TABLE: &str =
    "ERR The value stored at the specified key is not represented using an hash table";
/// DEBUG HTSTATS of a database that does not exist.
pub const DEBUG_DB_OUT_OF_RANGE: &str = "ERR Out of range database";
/// DEBUG CLIENT-EVICTION while `maxmemory-clients` is 0.
pub const DEBUG_NO_CLIENT_EVICTION: &str = "ERR maxmemory-clients is disabled.";
/// DEBUG LOADAOF: inside MULTI (Kiln's), with no complete AOF to load (where Redis
/// exits), when the writer does not catch up (Kiln's), and a file that does not load.
pub const DEBUG_LOADAOF_IN_MULTI: &str = "ERR DEBUG LOADAOF can't run inside a transaction";
pub const DEBUG_LOADAOF_NOT_ON: &str =
    "ERR DEBUG LOADAOF needs the AOF on and its base written (appendonly yes)";
pub const DEBUG_LOADAOF_BUSY: &str =
    "ERR DEBUG LOADAOF: the AOF writer did not catch up, try again";
pub const DEBUG_LOADAOF_FAILED: &str = "ERR Error trying to load the AOF files, check server logs.";
/// HINCRBY on a field whose value is not an integer.
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
/// HINCRBYFLOAT on a field whose value is not a float.
pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
/// HINCRBYFLOAT with an infinite increment.
pub const INCR_NAN_OR_INF: &str = "ERR value is NaN or Infinity";
/// A count the command cannot honour (HRANDFIELD / ZRANDMEMBER with values, huge counts).
pub const OUT_OF_RANGE: &str = "ERR value is out of range";
/// `getRangeLongFromObjectOrReply(-LONG_MAX, LONG_MAX)`: a count of exactly i64::MIN.
pub const LONG_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// SINTERCARD (and other numkeys commands) with a count below 1 or not an integer.
pub const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
/// A numkeys count larger than the number of arguments that follow it.
pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
/// SINTERCARD LIMIT with a negative or non-integer value.
pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
/// LSET beyond the ends of the list.
pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
/// LPOS RANK 0.
pub const LPOS_RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
/// LPOS COUNT below 0 or not an integer.
pub const LPOS_COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
/// LPOS MAXLEN below 0 or not an integer.
pub const LPOS_MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
/// The COUNT of LMPOP / BLMPOP / ZMPOP / BZMPOP below 1 or not an integer.
pub const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";
/// Kiln only: a reply to random draws with repetition (SRANDMEMBER with a negative count)
/// would pass proto-max-bulk-len bytes; Redis would keep building it.
pub const REPLY_TOO_BIG: &str =
    "ERR reply would exceed proto-max-bulk-len bytes, ask for fewer elements";
/// ZADD with both NX and XX.
pub const ZADD_NX_XX: &str = "ERR XX and NX options at the same time are not compatible";
/// ZADD with GT and LT, or either with NX.
pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
/// ZADD INCR with more than one score-member pair.
pub const ZADD_INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
/// ZINCRBY / ZADD INCR adding -inf to inf (or the reverse).
pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
/// A score range bound that is not a float (ZRANGEBYSCORE, ZCOUNT, ...).
pub const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
/// A lex range bound without its `[` / `(` prefix, or not `-` / `+` (ZRANGEBYLEX, ...).
pub const LEX_RANGE_INVALID: &str = "ERR min or max not valid string range item";
/// ZRANGE ... LIMIT without BYSCORE or BYLEX.
pub const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
/// ZRANGE ... BYLEX WITHSCORES (and ZRANGEBYLEX WITHSCORES).
pub const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
/// ZUNIONSTORE & co with a WEIGHTS value that is not a float.
pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";

// Streams.
/// A stream ID argument that does not parse.
pub const STREAM_ID_INVALID: &str = "ERR Invalid stream ID specified as stream command argument";
/// XADD with the explicit ID 0-0.
pub const XADD_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
/// XADD with an ID not above the stream's last one.
pub const XADD_ID_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
/// XADD on a stream whose last ID is the maximum.
pub const XADD_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
/// XADD / XTRIM with both MAXLEN and MINID.
pub const XTRIM_BOTH: &str =
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
/// XADD / XTRIM with a negative MAXLEN.
pub const XTRIM_MAXLEN_NEGATIVE: &str = "ERR The MAXLEN argument must be >= 0.";
/// XADD / XTRIM with a negative LIMIT.
pub const XTRIM_LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
/// LIMIT without MAXLEN or MINID.
pub const XTRIM_LIMIT_NO_STRATEGY: &str =
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
/// LIMIT with an exact (`=`) trim.
pub const XTRIM_LIMIT_EXACT: &str =
    "ERR syntax error, LIMIT cannot be used without the special ~ option";
/// XTRIM without MAXLEN or MINID.
pub const XTRIM_NO_STRATEGY: &str =
    "ERR syntax error, XTRIM must be called with a trimming strategy";
/// XRANGE with an exclusive start that cannot be incremented.
pub const XRANGE_BAD_START: &str = "ERR invalid start ID for the interval";
/// XRANGE with an exclusive end that cannot be decremented.
pub const XRANGE_BAD_END: &str = "ERR invalid end ID for the interval";
/// XSETID below the stream's last entry.
pub const XSETID_SMALL: &str =
    "ERR The ID specified in XSETID is smaller than the target stream top item";
/// XSETID with ENTRIESADDED below the stream's length.
pub const XSETID_ENTRIES_SMALL: &str =
    "ERR The entries_added specified in XSETID is smaller than the target stream length";
/// XSETID with a negative ENTRIESADDED.
pub const XSETID_ENTRIES_NEGATIVE: &str = "ERR entries_added must be positive";
/// XSETID with MAXDELETEDID above the new last ID.
pub const XSETID_MAXDEL_BIG: &str =
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id";
/// XREAD BLOCK with a non-integer timeout.
pub const TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
/// XREAD GROUP.
pub const XREAD_GROUP: &str =
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
/// XREAD NOACK.
pub const XREAD_NOACK: &str =
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
/// XGROUP on a missing key (without MKSTREAM).
pub const XGROUP_NO_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
/// XGROUP CREATE of an existing group.
pub const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
/// XGROUP CREATE / SETID with ENTRIESREAD below -1.
pub const ENTRIESREAD_INVALID: &str = "ERR value for ENTRIESREAD must be positive or -1";
/// XREADGROUP with `$`.
pub const XREADGROUP_DOLLAR: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";
/// XREAD with `>`.
pub const XREAD_GT: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";
/// XREADGROUP without GROUP.
pub const XREADGROUP_NO_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
/// XCLAIM's min-idle-time that is not an integer.
pub const XCLAIM_MIN_IDLE: &str = "ERR Invalid min-idle-time argument for XCLAIM";
/// XCLAIM IDLE that is not an integer.
pub const XCLAIM_IDLE: &str = "ERR Invalid IDLE option argument for XCLAIM";
/// XCLAIM TIME that is not an integer.
pub const XCLAIM_TIME: &str = "ERR Invalid TIME option argument for XCLAIM";
/// XCLAIM RETRYCOUNT that is not an integer.
pub const XCLAIM_RETRYCOUNT: &str = "ERR Invalid RETRYCOUNT option argument for XCLAIM";
/// XAUTOCLAIM's min-idle-time that is not an integer.
pub const XAUTOCLAIM_MIN_IDLE: &str = "ERR Invalid min-idle-time argument for XAUTOCLAIM";
/// XAUTOCLAIM COUNT below 1.
pub const XAUTOCLAIM_COUNT: &str = "ERR COUNT must be > 0";
/// XREAD or XREADGROUP with an odd number of arguments after STREAMS.
pub const XREAD_UNBALANCED: &str =
    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";

// DUMP / RESTORE.
/// RESTORE onto an existing key without REPLACE.
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
/// RESTORE with a negative TTL.
pub const RESTORE_TTL_NEGATIVE: &str = "ERR Invalid TTL value, must be >= 0";
/// RESTORE IDLETIME below 0.
pub const RESTORE_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
/// RESTORE FREQ outside 0..=255.
pub const RESTORE_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";
/// A RESTORE payload too short, from a newer RDB version, or with a wrong CRC.
pub const DUMP_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
/// A RESTORE payload whose value does not decode.
pub const BAD_DATA_FORMAT: &str = "ERR Bad data format";

// Replication.
/// A write on a read-only replica.
pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
/// A write on a primary with fewer good replicas than `min-replicas-to-write`.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
/// A command needing fresh data on a replica whose link is down, with
/// `replica-serve-stale-data no`.
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
/// PSYNC / SYNC to a replica that is not connected to its own primary.
pub const NOMASTERLINK: &str = "NOMASTERLINK Can't SYNC while not connected with my master";
/// PSYNC / SYNC to a primary while its FAILOVER is under way.
pub const NOMASTERLINK_FAILOVER: &str = "NOMASTERLINK Can't SYNC while failing over";
/// `PSYNC <replid> <offset> FAILOVER` naming another history than this replica's.
pub const PSYNC_FAILOVER_TO_MASTER: &str = "ERR PSYNC FAILOVER can't be sent to a master.";
pub const PSYNC_FAILOVER_REPLID: &str = "ERR PSYNC FAILOVER replid must match my replid.";
/// FAILOVER's checks, in Redis's order.
pub const FAILOVER_NONE: &str = "ERR No failover in progress.";
pub const FAILOVER_TIMEOUT: &str = "ERR FAILOVER timeout must be greater than 0";
pub const FAILOVER_IN_PROGRESS: &str = "ERR FAILOVER already in progress.";
pub const FAILOVER_ON_REPLICA: &str = "ERR FAILOVER is not valid when server is a replica.";
pub const FAILOVER_NO_REPLICAS: &str = "ERR FAILOVER requires connected replicas.";
pub const FAILOVER_FORCE: &str =
    "ERR FAILOVER with force option requires both a timeout and target HOST and IP.";
pub const FAILOVER_NOT_A_REPLICA: &str = "ERR FAILOVER target HOST and PORT is not a replica.";
pub const FAILOVER_NOT_ONLINE: &str = "ERR FAILOVER target replica is not online.";
/// The reply of a client blocked on keys when its server becomes a replica (a wire reply).
pub const UNBLOCKED_ROLE_CHANGE: &str =
    "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n";
/// WAIT on a replica.
pub const WAIT_ON_REPLICA: &str = "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.";
/// REPLICAOF / PSYNC from a connection that is already a replica.
pub const CLIENT_IS_REPLICA: &str = "ERR Command is not valid when client is a replica.";
/// A command without the `loading` flag while the dataset is being loaded (a replica
/// loading its primary's snapshot).
pub const LOADING: &str = "LOADING Redis is loading the dataset in memory";
/// REPLICAOF with a port outside 0..=65535.
pub const INVALID_MASTER_PORT: &str = "ERR Invalid master port";

// The append-only file.
/// BGREWRITEAOF while a rewrite is being written.
pub const AOF_REWRITE_IN_PROGRESS: &str =
    "ERR Background append only file rewriting already in progress";
/// BGREWRITEAOF that could not start (the reason is in the log).
pub const AOF_REWRITE_FAILED: &str = "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";

// Bitmaps.
/// A bit offset that is not an integer, negative, or past `proto-max-bulk-len`.
pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
/// SETBIT with a value other than 0 or 1.
pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
/// BITPOS looking for a bit other than 0 or 1.
pub const BIT_ARGUMENT: &str = "ERR The bit argument must be 1 or 0.";
/// A BITFIELD type other than i1..i64 or u1..u63.
pub const BITFIELD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
/// BITFIELD OVERFLOW with a mode other than WRAP, SAT or FAIL.
pub const OVERFLOW_TYPE: &str = "ERR Invalid OVERFLOW type specified";
/// BITFIELD_RO with SET or INCRBY.
pub const BITFIELD_RO_GET: &str = "ERR BITFIELD_RO only supports the GET subcommand";
/// BITOP NOT with several source keys.
pub const BITOP_NOT_ONE_KEY: &str = "ERR BITOP NOT must be called with a single source key.";

// HyperLogLog.
/// A string that is not a HyperLogLog (bad header or size).
pub const HLL_WRONG_TYPE: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
/// A HyperLogLog whose registers do not decode.
pub const HLL_CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";
/// PFDEBUG on a missing key.
pub const HLL_NO_KEY: &str = "ERR The specified key does not exist";
/// PFDEBUG DECODE of a dense HyperLogLog.
pub const HLL_NOT_SPARSE: &str = "ERR HLL encoding is not sparse";

/// MIGRATE ... KEYS with a key argument.
pub const MIGRATE_KEYS_NOT_EMPTY: &str =
    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string";

/// A command failed; the text is what the client receives (without the leading `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// A fixed Redis error text.
    Static(&'static str),
    /// A formatted error text (must start with the error code, e.g. `ERR `).
    Owned(String),
}

pub use CommandError::Static as E;

impl CommandError {
    pub fn wrong_type() -> Self {
        E(WRONG_TYPE)
    }
    pub fn not_integer() -> Self {
        E(NOT_INTEGER)
    }
    pub fn syntax() -> Self {
        E(SYNTAX)
    }

    /// `ERR wrong number of arguments for 'get' command`
    pub fn arity(fullname: &str) -> Self {
        Self::Owned(format!(
            "ERR wrong number of arguments for '{fullname}' command"
        ))
    }

    /// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `
    pub fn unknown_command(args: &[&[u8]]) -> Self {
        let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]);
        let mut rest = String::new();
        for a in &args[1..] {
            if rest.len() >= 128 {
                break;
            }
            let room = 128 - rest.len();
            let a = String::from_utf8_lossy(&a[..a.len().min(room)]);
            rest.push('\'');
            rest.push_str(&a);
            rest.push_str("' ");
        }
        Self::Owned(format!(
            "ERR unknown command '{name}', with args beginning with: {rest}"
        ))
    }

    /// `ERR unknown subcommand 'foo'. Try CONFIG HELP.`
    pub fn unknown_subcommand(cmd: &[u8], sub: &[u8]) -> Self {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]);
        Self::Owned(format!(
            "ERR unknown subcommand '{sub}'. Try {} HELP.",
            crate::util::upper(cmd)
        ))
    }

    /// `ERR unknown subcommand or wrong number of arguments for 'foo'. Try DEBUG HELP.`, for
    /// commands that take their subcommand as an argument (DEBUG) rather than from the table.
    pub fn bad_subcommand(cmd: &[u8], sub: &[u8]) -> Self {
        // Redis formats the name with `%.128s`: cut at 128 bytes or the first NUL.
        let sub = &sub[..sub.len().min(128)];
        let sub = sub.split(|&c| c == 0).next().unwrap_or_default();
        Self::Owned(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
            String::from_utf8_lossy(sub),
            crate::util::upper(cmd)
        ))
    }

    /// `ERR Unknown option or number of arguments for CONFIG SET - 'x'`
    pub fn config_set_unknown(name: &str) -> Self {
        Self::Owned(format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
        ))
    }

    /// `ERR CONFIG SET failed (possibly related to argument 'x') - <reason>`
    pub fn config_set_failed(name: &str, reason: &str) -> Self {
        Self::Owned(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"
        ))
    }

    /// `ERR Rewriting config file: <reason>`
    pub fn config_rewrite_failed(reason: &str) -> Self {
        Self::Owned(format!("ERR Rewriting config file: {reason}"))
    }

    /// `ERR invalid expire time in 'set' command`
    pub fn invalid_expire(cmd: &str) -> Self {
        Self::Owned(format!("ERR invalid expire time in '{cmd}' command"))
    }

    /// Any `ERR <msg>` text.
    pub fn err(msg: impl Into<Cow<'static, str>>) -> Self {
        match msg.into() {
            Cow::Borrowed(s) => Self::Owned(format!("ERR {s}")),
            Cow::Owned(s) => Self::Owned(format!("ERR {s}")),
        }
    }

    /// The text sent to the client.
    pub fn text(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Owned(s) => s,
        }
    }

    /// The error code: the first word (`ERR`, `WRONGTYPE`, ...), for errorstats.
    pub fn code(&self) -> &str {
        self.text().split(' ').next().unwrap_or("ERR")
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for CommandError {}

/// Result of a command handler.
pub type CmdResult = Result<(), CommandError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text_matches_redis() {
        let e = CommandError::unknown_command(&[b"foo", b"a", b"b"]);
        assert_eq!(
            e.text(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let e = CommandError::unknown_command(&[b"foo"]);
        assert_eq!(
            e.text(),
            "ERR unknown command 'foo', with args beginning with: "
        );
    }
}
