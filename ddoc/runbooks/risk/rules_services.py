"""Rule tables for services and their control tools: containers, systemd, databases' CLIs,
Patroni, GitLab Omnibus, Cassandra, etcd, Consul, Vault, Prometheus and Kafka."""

from __future__ import annotations

from ddoc.runbooks.risk.rules import G, R, Rule, Tool, Y, greens, label, opts, reds, yellows

# fmt: off
_CONTAINER = Y("docker.container", "docker container changes containers", sub={
    **greens("docker.container", "ls list inspect logs top stats port diff", "only reads"),
    **yellows("docker.container", "start stop restart pause unpause run create kill update "
              "rename cp exec attach commit export", "changes containers (reversible)"),
    **reds("docker.container", "rm remove prune", "removes containers"),
})


def _group(prefix: str, read: str, change: str, remove: str) -> Rule:
    return Y(prefix, f"{label(prefix)} changes state", sub={
        **greens(prefix, read, "only reads"),
        **yellows(prefix, change, "changes state (reversible)"),
        **reds(prefix, remove, "removes data"),
    })


COMPOSE = Y("compose.unknown", "unrecognised compose subcommand: not proven read-only", sub={
    **greens("compose", "ps logs config top images ls version events port", "only reads"),
    **yellows("compose", "up restart start stop pull build create run exec kill pause unpause "
              "scale cp push", "changes containers (reversible)"),
    "down": Y("compose.down", "compose down removes containers but keeps volumes", flags={
        k: R("compose.down.volumes", "compose down -v deletes volumes")
        for k in ("-v", "--volumes", "--rmi")}),
    "rm": R("compose.rm", "compose rm removes containers"),
})

DOCKER = Y("docker.unknown", "unrecognised docker subcommand: not proven read-only", sub={
    **greens("docker", "ps logs inspect stats images version info top port diff history events "
             "search", "only reads"),
    **yellows("docker", "restart start stop pause unpause run pull push build tag create kill "
              "update rename cp attach commit export save load import exec login logout swarm",
              "changes containers or images (reversible)"),
    **reds("docker", "rm rmi", "removes containers or images"),
    "container": _CONTAINER,
    "compose": COMPOSE,
    "network": _group("docker.network", "ls list inspect", "create connect disconnect",
                      "rm remove prune"),
    "volume": _group("docker.volume", "ls list inspect", "create", "rm remove prune"),
    "image": _group("docker.image", "ls list inspect history", "pull push tag build load import "
                    "save", "rm remove prune"),
    "system": _group("docker.system", "df info events", "", "prune"),
    "builder": _group("docker.builder", "ls", "build", "prune"),
    "context": _group("docker.context", "ls list show inspect", "use create update", "rm"),
    "node": _group("docker.node", "ls inspect ps", "update promote demote", "rm"),
    "service": _group("docker.service", "ls inspect logs ps", "create update scale rollback",
                      "rm"),
    "stack": _group("docker.stack", "ls ps services", "deploy", "rm"),
    "secret": _group("docker.secret", "ls inspect", "create", "rm"),
    "config": _group("docker.config", "ls inspect", "create", "rm"),
})
_DOCKER_OPTS = opts("-H --host --context --config -l --log-level -f --file -p --project-name "
                    "--env-file --profile --project-directory")

CRICTL = Y("crictl.unknown", "unrecognised crictl subcommand: not proven read-only", sub={
    **greens("crictl", "ps pods images img inspect inspecti inspectp logs stats statsp info "
             "version config", "only reads"),
    **yellows("crictl", "stop stopp start pull exec attach update port-forward run runp create",
              "changes containers (reversible)"),
    **reds("crictl", "rm rmi rmp", "removes containers or images"),
})

SYSTEMCTL = G("systemctl.list", "systemctl lists units", sub={
    **greens("systemctl", "status is-active is-enabled is-failed is-system-running list-units "
             "list-unit-files list-timers list-sockets list-dependencies list-jobs show cat "
             "help get-default show-environment", "only reads"),
    **yellows("systemctl", "restart reload start enable try-restart reload-or-restart "
              "try-reload-or-restart condrestart daemon-reload daemon-reexec reset-failed "
              "set-property edit preset unmask revert link set-default set-environment "
              "unset-environment import-environment", "changes a unit (reversible)"),
    # stop is red: the service stays down until somebody notices and starts it again.
    **reds("systemctl", "stop disable mask kill poweroff reboot halt isolate rescue emergency "
           "suspend hibernate kexec default soft-reboot", "takes a service or the host down"),
    "*": Y("systemctl.unknown", "unrecognised systemctl verb: not proven read-only"),
})

SERVICE = Y("service.unknown", "service: not proven read-only", modes={
    "--status-all": G("service.status", "service --status-all only reads")}, sub={
    "*": Y("service.unknown", "service: not proven read-only", sub={
        "status": G("service.status", "service status only reads"),
        **yellows("service", "restart reload force-reload start try-restart condrestart",
                  "changes a service (reversible)"),
        "stop": R("service.stop", "service stop takes a service down"),
    }),
})

JOURNALCTL = G("journalctl.read", "journalctl only reads", flags={
    **{k: R("journalctl.vacuum", "journalctl --vacuum deletes logs")
       for k in ("--vacuum-size", "--vacuum-time", "--vacuum-files")},
    **{k: Y("journalctl.maintenance", "journalctl --rotate/--flush changes the journal")
       for k in ("--rotate", "--flush", "--sync", "--relinquish-var", "--setup-keys")},
})

PATRONICTL = Y("patronictl.unknown", "unrecognised patronictl command", sub={
    **greens("patronictl", "list show-config history topology version dsn", "only reads"),
    **yellows("patronictl", "restart reload pause resume edit-config flush query",
              "changes the cluster (reversible)"),
    **reds("patronictl", "failover switchover reinit remove", "changes the primary or wipes a "
           "member"),
})

ARGOCD = Y("argocd.unknown", "unrecognised argocd command", sub={
    "app": Y("argocd.app", "unrecognised argocd app command", sub={
        **greens("argocd.app", "get list history diff manifests logs resources wait",
                 "only reads"),
        **yellows("argocd.app", "sync rollback set unset patch terminate-op actions restart",
                  "changes an application (reversible)"),
        **reds("argocd.app", "delete delete-resource", "removes an application or resources"),
    }),
    **greens("argocd", "version account context", "only reads"),
    "login": G("argocd.login", "argocd login only stores a session"),
})

NGINX = Y("nginx.unknown", "nginx: not proven read-only", modes={
    "-t": G("nginx.test", "nginx -t only tests the configuration"),
    "-T": G("nginx.test", "nginx -T only tests and prints the configuration"),
    "-v": G("nginx.version", "nginx -v only prints the version"),
    "-V": G("nginx.version", "nginx -V only prints the version"),
})

RABBITMQCTL = Y("rabbitmqctl.unknown", "unrecognised rabbitmqctl command", sub={
    "list_*": G("rabbitmqctl.list", "rabbitmqctl list_* only reads"),
    **greens("rabbitmqctl", "status cluster_status environment report node_health_check",
             "only reads"),
    **yellows("rabbitmqctl", "stop_app start_app set_policy clear_policy close_connection "
              "set_vm_memory_high_watermark rotate_logs", "changes the broker (reversible)"),
    **reds("rabbitmqctl", "purge_queue delete_queue reset force_reset forget_cluster_node "
           "delete_user delete_vhost stop", "deletes messages, queues or cluster state"),
})

CERTBOT = Y("certbot.unknown", "unrecognised certbot command", sub={
    **greens("certbot", "certificates plugins show_account", "only reads"),
    "renew": Y("certbot.renew", "certbot renew replaces certificates", modes={
        "--dry-run": G("certbot.dry_run", "certbot --dry-run changes nothing")}),
    "certonly": Y("certbot.certonly", "certbot certonly issues a certificate", modes={
        "--dry-run": G("certbot.dry_run", "certbot --dry-run changes nothing")}),
    **reds("certbot", "delete revoke", "removes or revokes certificates"),
})

GITLAB_CTL = Y("gitlab_ctl.unknown", "unrecognised gitlab-ctl command", sub={
    **greens("gitlab_ctl", "status tail service-list show-config get-postgresql-primary",
             "only reads"),
    **yellows("gitlab_ctl", "restart reconfigure hup start term once usr1 usr2 int deploy-page "
              "backup-etc pg-upgrade set-replication-password", "changes services (reversible)"),
    **reds("gitlab_ctl", "stop kill graceful-kill cleanse uninstall remove-accounts",
           "takes GitLab down or deletes data"),
    "repmgr": Y("gitlab_ctl.repmgr", "gitlab-ctl repmgr changes replication", sub={
        "cluster": Y("gitlab_ctl.repmgr", "gitlab-ctl repmgr changes replication", sub={
            "show": G("gitlab_ctl.repmgr.show", "repmgr cluster show only reads")}),
        "standby": Y("gitlab_ctl.repmgr", "gitlab-ctl repmgr changes replication", sub={
            **reds("gitlab_ctl.repmgr.standby", "promote switchover", "changes the primary")}),
    }),
    "patroni": Y("gitlab_ctl.patroni", "gitlab-ctl patroni changes the cluster", sub={
        **greens("gitlab_ctl.patroni", "members check-leader check-replica", "only reads"),
        **reds("gitlab_ctl.patroni", "failover switchover reinitialize-replica remove",
               "changes the primary or wipes a replica"),
    }),
})

GITLAB_RAILS = Y("gitlab_rails.unknown", "gitlab-rails runs application code", sub={
    "runner": Y("gitlab_rails.runner", "gitlab-rails runner executes arbitrary Ruby"),
    **yellows("gitlab_rails", "console c dbconsole db", "opens an interactive console"),
})

NODETOOL = Y("nodetool.unknown", "unrecognised nodetool command", sub={
    **greens("nodetool", "status info ring describecluster tpstats tablestats cfstats "
             "compactionstats netstats gossipinfo version proxyhistograms tablehistograms "
             "cfhistograms getcompactionthroughput getstreamthroughput statusbinary "
             "statusgossip statushandoff describering gcstats listsnapshots getendpoints "
             "getlogginglevels", "only reads"),
    **yellows("nodetool", "repair cleanup compact flush snapshot setcompactionthroughput "
              "setstreamthroughput disablegossip enablegossip disablebinary enablebinary "
              "garbagecollect upgradesstables rebuild refresh scrub enablehandoff "
              "disablehandoff invalidatekeycache invalidaterowcache setlogginglevel",
              "changes the node (reversible)"),
    **reds("nodetool", "decommission removenode assassinate drain stopdaemon clearsnapshot "
           "truncatehints", "removes a node or its data, or takes it down"),
})

ETCDCTL = Y("etcdctl.unknown", "unrecognised etcdctl command", sub={
    **greens("etcdctl", "get watch version", "only reads"),
    "endpoint": G("etcdctl.endpoint", "etcdctl endpoint only reads"),
    "member": _group("etcdctl.member", "list", "add update promote", "remove"),
    "alarm": _group("etcdctl.alarm", "list", "disarm", ""),
    "lease": _group("etcdctl.lease", "list timetolive", "grant keep-alive", "revoke"),
    "user": _group("etcdctl.user", "list get", "add grant-role revoke-role passwd", "delete"),
    "role": _group("etcdctl.role", "list get", "add grant-permission revoke-permission",
                   "delete"),
    "auth": _group("etcdctl.auth", "status", "enable disable", ""),
    "snapshot": _group("etcdctl.snapshot", "status", "save", "restore"),
    **yellows("etcdctl", "put txn defrag move-leader make-mirror lock elect check",
              "changes the key space (reversible)"),
    **reds("etcdctl", "del compaction", "deletes keys or history"),
})

CONSUL = Y("consul.unknown", "unrecognised consul command", sub={
    **greens("consul", "members info version monitor catalog", "only reads"),
    "kv": _group("consul.kv", "get export", "put import", "delete"),
    "snapshot": _group("consul.snapshot", "inspect", "save", "restore"),
    "intention": _group("consul.intention", "list get check match", "create", "delete"),
    "operator": Y("consul.operator", "consul operator changes the cluster", sub={
        "raft": _group("consul.operator.raft", "list-peers", "transfer-leader", "remove-peer"),
    }),
    **yellows("consul", "services maint reload lock event acl", "changes the cluster"),
    **reds("consul", "leave force-leave", "removes a node from the cluster"),
})

VAULT = Y("vault.unknown", "unrecognised vault command", sub={
    **greens("vault", "status read list version print path-help", "only reads"),
    "kv": Y("vault.kv", "vault kv changes secrets", sub={
        **greens("vault.kv", "get list", "only reads"),
        **yellows("vault.kv", "put patch rollback undelete enable-versioning",
                  "writes a secret (versioned)"),
        **reds("vault.kv", "delete destroy", "deletes secrets"),
        "metadata": _group("vault.kv.metadata", "get list", "put patch", "delete"),
    }),
    "token": _group("vault.token", "lookup capabilities", "create renew", "revoke"),
    "auth": _group("vault.auth", "list help", "enable tune", "disable"),
    "secrets": _group("vault.secrets", "list", "enable tune move", "disable"),
    "policy": _group("vault.policy", "list read", "fmt write", "delete"),
    "audit": _group("vault.audit", "list", "enable", "disable"),
    "lease": _group("vault.lease", "lookup", "renew", "revoke"),
    "namespace": _group("vault.namespace", "list lookup", "create", "delete"),
    "operator": Y("vault.operator", "vault operator changes the cluster", sub={
        **greens("vault.operator", "members key-status usage diagnose", "only reads"),
        **yellows("vault.operator", "unseal step-down rekey rotate init", "changes the cluster"),
        "seal": R("vault.operator.seal", "vault operator seal takes Vault down"),
        "raft": Y("vault.operator.raft", "vault operator raft changes the cluster", sub={
            "list-peers": G("vault.operator.raft.list", "list-peers only reads"),
            "remove-peer": R("vault.operator.raft.remove", "removes a raft peer"),
            "snapshot": _group("vault.operator.raft.snapshot", "inspect", "save", "restore"),
        }),
    }),
    **yellows("vault", "write login unwrap patch agent server ssh", "changes Vault state"),
    "delete": R("vault.delete", "vault delete removes secrets"),
})

PROMTOOL = Y("promtool.unknown", "unrecognised promtool command", sub={
    **greens("promtool", "check query test debug", "only reads"),
    "tsdb": _group("promtool.tsdb", "analyze list dump", "create-blocks-from", ""),
})

AMTOOL = G("amtool.query", "amtool only reads", sub={
    "alert": G("amtool.alert", "amtool alert query only reads", sub={
        "query": G("amtool.alert.query", "amtool alert query only reads"),
        "add": Y("amtool.alert.add", "amtool alert add fires an alert")}),
    "silence": G("amtool.silence", "amtool silence query only reads", sub={
        "query": G("amtool.silence.query", "amtool silence query only reads"),
        **yellows("amtool.silence", "add expire import update", "changes silences (reversible)"),
    }),
    **greens("amtool", "check-config config cluster template", "only reads"),
    "*": Y("amtool.unknown", "unrecognised amtool command"),
})


def _modes(prefix: str, what: str, green: str, yellow: str, red: str) -> Rule:
    return Y(f"{prefix}.unknown", f"{what}: not proven read-only", modes={
        **{k: G(f"{prefix}.read", f"{what} {k} only reads") for k in green.split()},
        **{k: Y(f"{prefix}.change", f"{what} {k} changes state (reversible)")
           for k in yellow.split()},
        **{k: R(f"{prefix}.delete", f"{what} {k} deletes data") for k in red.split()},
    })


_CONSUMER_GROUPS = _modes("kafka.consumer_groups", "kafka-consumer-groups", "--list --describe",
                          "--reset-offsets", "--delete --delete-offsets")
# Executing an offset reset makes consumers skip or replay messages; the old offsets are gone.
_CONSUMER_GROUPS = Y(_CONSUMER_GROUPS.id, _CONSUMER_GROUPS.reason, modes=_CONSUMER_GROUPS.modes,
                     flags={"--execute": R("kafka.consumer_groups.reset.execute",
                                           "executing an offset reset skips or replays "
                                           "messages; the old offsets are lost")})

KAFKA = {
    "kafka-topics": _modes("kafka.topics", "kafka-topics", "--list --describe",
                           "--create --alter", "--delete"),
    "kafka-consumer-groups": _CONSUMER_GROUPS,
    "kafka-configs": _modes("kafka.configs", "kafka-configs", "--describe", "--alter", ""),
    "kafka-acls": _modes("kafka.acls", "kafka-acls", "--list", "--add", "--remove"),
    "kafka-reassign-partitions": _modes("kafka.reassign", "kafka-reassign-partitions",
                                        "--verify --generate", "--execute --cancel", ""),
    "kafka-log-dirs": G("kafka.log_dirs", "kafka-log-dirs only reads"),
    "kafka-broker-api-versions": G("kafka.api_versions", "only reads"),
    "kafka-console-consumer": G("kafka.console_consumer", "kafka-console-consumer only reads",
                                flags={"--group": Y("kafka.console_consumer.group",
                                                    "consuming with a group commits offsets")}),
    "kafka-console-producer": Y("kafka.console_producer", "kafka-console-producer writes "
                                "messages"),
    "kafka-delete-records": R("kafka.delete_records", "kafka-delete-records deletes messages"),
}

TOOLS: dict[str, Tool] = {
    "docker": Tool(DOCKER, _DOCKER_OPTS),
    "docker-compose": Tool(COMPOSE, _DOCKER_OPTS),
    "crictl": Tool(CRICTL, opts("-r --runtime-endpoint -i --image-endpoint -t --timeout "
                                "-c --config")),
    "argocd": Tool(ARGOCD, opts("--server --grpc-web-root-path --auth-token --config "
                                "--plaintext --insecure --core")),
    "systemctl": Tool(SYSTEMCTL, opts("-t --type -p --property -H --host -M --machine --state "
                                      "-n --lines -o --output -s --signal --kill-who "
                                      "--job-mode --root --what")),
    "service": Tool(SERVICE),
    "journalctl": Tool(JOURNALCTL),
    "patronictl": Tool(PATRONICTL, opts("-c --config-file -d --dcs-url --dcs")),
    "nginx": Tool(NGINX, opts("-c -g -p -e")),
    "rabbitmqctl": Tool(RABBITMQCTL, opts("-n --node -p --vhost -q -t --timeout")),
    "certbot": Tool(CERTBOT, opts("--cert-name -d --domains -m --email --config-dir "
                                  "--work-dir --logs-dir -a --authenticator -i --installer")),
    "gitlab-ctl": Tool(GITLAB_CTL),
    "gitlab-rails": Tool(GITLAB_RAILS, opts("-e --environment")),
    "nodetool": Tool(NODETOOL, opts("-h --host -p --port -u --username -pw --password -pwf")),
    "etcdctl": Tool(ETCDCTL, opts("--endpoints --cacert --cert --key -w --write-out --user "
                                  "--dial-timeout --command-timeout")),
    "consul": Tool(CONSUL),
    "vault": Tool(VAULT),
    "promtool": Tool(PROMTOOL),
    "amtool": Tool(AMTOOL, opts("--alertmanager.url -o --output")),
    **{name: Tool(rule) for name, rule in KAFKA.items()},
}
# fmt: on
