"""Rule tables for data stores: Postgres and MySQL tooling, repmgr, Redis commands, GitLab
rake tasks. SQL itself is classified in ``ddoc.runbooks.risk.sql``."""

from __future__ import annotations

import re

from ddoc.runbooks.risk.rules import G, R, Rule, Tool, Y, greens, opts, reds, yellows

# fmt: off
_PG_ACTIONS = {
    "status": G("pg_ctl.status", "pg_ctl status only reads"),
    **yellows("pg_ctl", "start restart reload kill logrotate init initdb",
              "changes the server (reversible)"),
    "promote": R("pg_ctl.promote", "pg_ctl promote turns a standby into a primary"),
    "stop": R("pg_ctl.stop", "pg_ctl stop takes the database down"),
}
PG_CTL = Y("pg_ctl.unknown", "unrecognised pg_ctl action", sub=_PG_ACTIONS)
PG_CTLCLUSTER = Y("pg_ctl.unknown", "unrecognised pg_ctlcluster action", sub={
    "*": Y("pg_ctl.unknown", "unrecognised pg_ctlcluster action", sub={
        "*": Y("pg_ctl.unknown", "unrecognised pg_ctlcluster action", sub=_PG_ACTIONS)})})

REPMGR = Y("repmgr.unknown", "unrecognised repmgr command", sub={
    "cluster": Y("repmgr.cluster", "repmgr cluster changes metadata", sub={
        **greens("repmgr.cluster", "show event events crosscheck matrix", "only reads")}),
    "node": Y("repmgr.node", "repmgr node changes a node", sub={
        **greens("repmgr.node", "status check", "only reads")}),
    "daemon": Y("repmgr.daemon", "repmgr daemon changes the daemon", sub={
        "status": G("repmgr.daemon.status", "repmgr daemon status only reads")}),
    "standby": Y("repmgr.standby", "repmgr standby changes replication", sub={
        **yellows("repmgr.standby", "register unregister follow", "changes replication"),
        **reds("repmgr.standby", "clone promote switchover", "changes the primary or "
               "overwrites a data directory"),
    }),
    **yellows("repmgr", "primary master witness", "changes replication metadata"),
})

MYSQLADMIN = Y("mysqladmin.unknown", "unrecognised mysqladmin command", sub={
    **greens("mysqladmin", "status processlist variables ping version extended-status",
             "only reads"),
    **yellows("mysqladmin", "kill refresh create reload password start-slave stop-slave debug "
              "flush-*", "changes the server (reversible)"),
    **reds("mysqladmin", "shutdown drop", "takes the server down or drops a database"),
})

REDIS = Y("redis.unknown", "unrecognised redis command: not proven read-only", sub={
    **greens("redis", "INFO GET MGET PING SCAN SSCAN HSCAN ZSCAN KEYS TTL PTTL TYPE LLEN LRANGE "
             "LINDEX HGET HGETALL HKEYS HVALS HLEN HMGET HEXISTS SCARD SMEMBERS SISMEMBER "
             "SRANDMEMBER ZCARD ZRANGE ZRANGEBYSCORE ZREVRANGE ZSCORE ZRANK ZCOUNT EXISTS STRLEN "
             "GETRANGE DBSIZE TIME ROLE LASTSAVE ECHO XLEN XINFO XRANGE XREVRANGE XPENDING "
             "PUBSUB MONITOR OBJECT DUMP COMMAND BITCOUNT PFCOUNT GEOPOS GEODIST SUBSCRIBE "
             "PSUBSCRIBE HELLO AUTH SELECT WATCH UNWATCH READONLY READWRITE EVAL_RO "
             "DISCARD", "only reads"),
    **yellows("redis", "SET SETEX PSETEX SETNX MSET MSETNX GETSET APPEND INCR INCRBY "
              "INCRBYFLOAT DECR DECRBY EXPIRE PEXPIRE EXPIREAT PEXPIREAT PERSIST HSET HSETNX "
              "HMSET HINCRBY LPUSH RPUSH LPUSHX RPUSHX LINSERT LSET SADD SMOVE ZADD ZINCRBY XADD "
              "XACK XCLAIM XAUTOCLAIM PUBLISH RENAME RENAMENX MOVE COPY MIGRATE RESTORE BGSAVE "
              "SAVE BGREWRITEAOF EVAL EVALSHA FCALL PFADD GEOADD SETRANGE SETBIT MULTI EXEC "
              "RPOPLPUSH LMOVE", "changes data (reversible)"),
    **reds("redis", "FLUSHALL FLUSHDB DEL UNLINK GETDEL HDEL SREM SPOP ZREM ZREMRANGEBYSCORE "
           "ZREMRANGEBYRANK ZREMRANGEBYLEX ZPOPMIN ZPOPMAX LREM LTRIM LPOP RPOP BLPOP BRPOP XDEL "
           "XTRIM SWAPDB", "deletes data irreversibly"),
    **reds("redis", "SHUTDOWN DEBUG", "takes the server down or can crash it"),
    # REPLICAOF NO ONE promotes; REPLICAOF host port makes a primary discard its data.
    **reds("redis", "FAILOVER REPLICAOF SLAVEOF", "changes which node is primary"),
    "SLOWLOG": G("redis.SLOWLOG", "redis SLOWLOG only reads", sub={
        "RESET": Y("redis.SLOWLOG.RESET", "redis SLOWLOG RESET clears the slow log")}),
    "CLIENT": Y("redis.CLIENT", "redis CLIENT changes connections", sub={
        **greens("redis.CLIENT", "LIST INFO GETNAME ID", "only reads"),
        **yellows("redis.CLIENT", "KILL PAUSE UNPAUSE SETNAME NO-EVICT",
                  "changes connections (clients reconnect)")}),
    "MEMORY": G("redis.MEMORY", "redis MEMORY only reads", sub={
        "PURGE": Y("redis.MEMORY.PURGE", "redis MEMORY PURGE changes the allocator")}),
    "CONFIG": Y("redis.CONFIG", "redis CONFIG changes configuration", sub={
        "GET": G("redis.CONFIG.GET", "redis CONFIG GET only reads"),
        **yellows("redis.CONFIG", "SET REWRITE RESETSTAT", "changes configuration (reversible)")}),
    "CLUSTER": Y("redis.CLUSTER", "redis CLUSTER changes the cluster", sub={
        **greens("redis.CLUSTER", "INFO NODES SLOTS SHARDS MYID KEYSLOT COUNTKEYSINSLOT "
                 "GETKEYSINSLOT LINKS REPLICAS SLAVES", "only reads"),
        **yellows("redis.CLUSTER", "MEET ADDSLOTS ADDSLOTSRANGE SETSLOT SAVECONFIG BUMPEPOCH",
                  "changes the cluster"),
        **reds("redis.CLUSTER", "FAILOVER FORGET RESET DELSLOTS DELSLOTSRANGE FLUSHSLOTS "
               "REPLICATE", "changes the primary or drops slots")}),
    "LATENCY": G("redis.LATENCY", "redis LATENCY only reads", sub={
        "RESET": Y("redis.LATENCY.RESET", "redis LATENCY RESET clears samples")}),
    "ACL": Y("redis.ACL", "redis ACL changes users", sub={
        **greens("redis.ACL", "LIST USERS WHOAMI GETUSER CAT LOG", "only reads"),
        **yellows("redis.ACL", "SETUSER SAVE LOAD", "changes users (reversible)"),
        "DELUSER": R("redis.ACL.DELUSER", "redis ACL DELUSER deletes users")}),
    "SCRIPT": Y("redis.SCRIPT", "redis SCRIPT changes scripts", sub={
        "EXISTS": G("redis.SCRIPT.EXISTS", "redis SCRIPT EXISTS only reads"),
        "FLUSH": R("redis.SCRIPT.FLUSH", "redis SCRIPT FLUSH deletes every script")}),
    "FUNCTION": Y("redis.FUNCTION", "redis FUNCTION changes functions", sub={
        **greens("redis.FUNCTION", "LIST DUMP STATS", "only reads"),
        **reds("redis.FUNCTION", "DELETE FLUSH", "deletes functions")}),
    "XGROUP": Y("redis.XGROUP", "redis XGROUP changes consumer groups", sub={
        **reds("redis.XGROUP", "DESTROY DELCONSUMER", "deletes a consumer group")}),
    "SENTINEL": G("redis.SENTINEL", "redis SENTINEL only reads", sub={
        **yellows("redis.SENTINEL", "RESET SET MONITOR", "changes sentinel configuration"),
        **reds("redis.SENTINEL", "REMOVE FAILOVER", "changes which node is primary"),
    }),
})
REDIS_TOOL = Tool(REDIS, upper=True)

# redis-cli's own modes (no server command): options, not positional words.
REDIS_CLI_MODES: dict[str, Rule] = {
    **{k: G("redis_cli.scan", f"redis-cli {k} only reads")
       for k in ("--scan", "--bigkeys", "--memkeys", "--hotkeys", "--stat", "--latency",
                 "--latency-history", "--latency-dist", "--intrinsic-latency")},
    **{k: Y("redis_cli.bulk", f"redis-cli {k} runs commands we cannot see")
       for k in ("--pipe", "--eval", "--rdb", "--functions-rdb", "--cluster")},
}

# gitlab-rake tasks, first match wins.
GITLAB_RAKE: tuple[tuple[re.Pattern[str], Rule], ...] = (
    (re.compile(r"db:(drop|reset|schema:load|setup)\b"),
     R("gitlab_rake.db_recreate", "gitlab-rake recreates the database")),
    (re.compile(r"destroy|backup:restore|purge|remove|delete|cleanup"),
     R("gitlab_rake.destroy", "gitlab-rake task deletes data")),
    (re.compile(r"^gitlab:(check|env:info|doctor|\w+:check)|:check$|:status$|:info$"),
     G("gitlab_rake.check", "gitlab-rake check task only reads")),
    (re.compile(r""), Y("gitlab_rake.task", "gitlab-rake runs a maintenance task")),
)

TOOLS: dict[str, Tool] = {
    "pg_ctl": Tool(PG_CTL, opts("-D --pgdata -m --mode -l --log -o --options -t --timeout")),
    "pg_ctlcluster": Tool(PG_CTLCLUSTER, opts("-o --options -m --mode")),
    "pg_dump": Tool(G("pg_dump.read", "pg_dump only reads", flags={
        k: Y("pg_dump.file", "pg_dump -f writes a file") for k in ("-f", "--file")})),
    "pg_dumpall": Tool(G("pg_dump.read", "pg_dumpall only reads", flags={
        k: Y("pg_dump.file", "pg_dumpall -f writes a file") for k in ("-f", "--file")})),
    "pg_restore": Tool(Y("pg_restore", "pg_restore loads data", modes={
        k: G("pg_restore.list", "pg_restore -l only lists") for k in ("-l", "--list")}, flags={
        k: R("pg_restore.clean", "pg_restore --clean drops objects first")
        for k in ("-c", "--clean")})),
    "repmgr": Tool(REPMGR, opts("-f --config-file")),
    "mysqladmin": Tool(MYSQLADMIN, opts("-u -h -P -S --user --host --port --socket")),
}
# fmt: on
