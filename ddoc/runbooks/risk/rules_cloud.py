"""Rule tables for cloud CLIs (aws, gcloud, az) and openssl.

AWS operations follow naming conventions (``describe-*`` reads, ``delete-*`` destroys), so one
generic table covers every service; a few services override single operations.
gcloud and az put the verb after a variable number of group words, so their rules ``scan``.
"""

from __future__ import annotations

from ddoc.runbooks.risk.rules import G, R, Rule, Tool, Y, opts


# fmt: off
def _ops(prefix: str, level: str, names: str, reason: str) -> dict[str, Rule]:
    make = {"G": G, "Y": Y, "R": R}[level]
    return {n: make(f"{prefix}.{n.rstrip('*').rstrip('-') or n}", reason) for n in names.split()}


_AWS_OPS: dict[str, Rule] = {
    **_ops("aws", "G", "describe-* list-* get-* batch-get-* search-* lookup-* filter-* "
           "scan query wait help tail simulate-* validate-* estimate-* preview-* test-*",
           "aws read operation only reads"),
    **_ops("aws", "Y", "put-* create-* update-* modify-* start-* stop-* tag-* untag-* reboot-* "
           "set-* attach-* detach-* associate-* disassociate-* enable-* disable-* register-* "
           "invoke* publish send-* run-* restore-* copy-* import-* export-* authorize-* "
           "revoke-* reset-* cancel-* change-* execute-* deploy apply-* add-* replace-* "
           "upload-* rotate-* resume-* suspend-* receive-* retry-* promote",
           "aws write operation changes resources (reversible)"),
    **_ops("aws", "R", "delete-* terminate-* deregister-* remove-* purge-* failover-* "
           "promote-* force-* batch-delete-* release-* drop-* discard-* destroy-*",
           "aws destructive operation removes resources or forces a failover"),
}


def _aws_service(**overrides: Rule) -> Rule:
    return Y("aws.unknown", "unrecognised aws operation: not proven read-only",
             sub={**_AWS_OPS, **{k.replace("_", "-"): v for k, v in overrides.items()}})


AWS = Y("aws.unknown", "unrecognised aws command: not proven read-only", sub={
    "s3": Y("aws.s3", "aws s3 changes objects", sub={
        "ls": G("aws.s3.ls", "aws s3 ls only reads"),
        "presign": G("aws.s3.presign", "aws s3 presign only signs a URL"),
        "cp": Y("aws.s3.cp", "aws s3 cp writes objects (versioning may keep old ones)"),
        "mv": Y("aws.s3.mv", "aws s3 mv moves objects"),
        "mb": Y("aws.s3.mb", "aws s3 mb creates a bucket"),
        "website": Y("aws.s3.website", "aws s3 website changes bucket settings"),
        "sync": Y("aws.s3.sync", "aws s3 sync writes objects", flags={
            "--delete": R("aws.s3.sync.delete", "aws s3 sync --delete removes objects")}),
        "rm": R("aws.s3.rm", "aws s3 rm deletes objects"),
        "rb": R("aws.s3.rb", "aws s3 rb deletes a bucket"),
    }),
    "rds": _aws_service(reboot_db_instance=Y(
        "aws.rds.reboot", "aws rds reboot-db-instance restarts a database", flags={
            "--force-failover": R("aws.rds.force_failover", "--force-failover switches the "
                                  "primary")})),
    "sts": _aws_service(),
    # Taking a target out of a load balancer is undone by registering it again.
    **{svc: _aws_service(**{op: Y(f"aws.{svc}.deregister", "aws deregisters a target from a "
                                  "load balancer (reversible: register it again)")})
       for svc, op in (("elbv2", "deregister_targets"),
                       ("elb", "deregister_instances_from_load_balancer"))},
    "*": _aws_service(),
})

_CLOUD_VERBS: dict[str, Rule] = {
    **_ops("cloud", "G", "list describe show read get-iam-policy get-value info version help "
           "tail get-server-config list-* get-versions get-upgrades show-* browse logs query",
           "read verb only reads"),
    # Writes only the local kubeconfig: nothing in the cloud changes.
    **_ops("cloud", "G", "get-credentials",
           "read verb only reads (it writes the local kubeconfig)"),
    **_ops("cloud", "Y", "create update resize start stop restart reset patch set-* add-* "
           "remove-* deploy rollback import export ssh scp connect set login "
           "scale deallocate redeploy enable disable execute invoke wait-for attach "
           "detach rotate upgrade submit",
           "write verb changes resources (reversible)"),
    **_ops("cloud", "R", "delete delete-* purge failover promote-replica reimage destroy wipe",
           "destructive verb removes resources or forces a failover"),
}


def _scan_tool(name: str) -> Rule:
    sub = {k: Rule(r.id.replace("cloud.", f"{name}.", 1), r.level,
                   r.reason.replace("read verb", f"{name} read verb")
                   .replace("write verb", f"{name} write verb")
                   .replace("destructive verb", f"{name} destructive verb"))
           for k, r in _CLOUD_VERBS.items()}
    return Y(f"{name}.unknown", f"unrecognised {name} command: not proven read-only",
             sub=sub, scan=True)


OPENSSL = Y("openssl.unknown", "unrecognised openssl command", sub={
    **_ops("openssl", "G", "s_client x509 verify crl asn1parse version ciphers dgst "
           "speed rand errstr list s_time ocsp", "openssl inspection only reads"),
    "req": Y("openssl.req", "openssl req writes a request or key", modes={
        "-noout": G("openssl.req.noout", "openssl req -noout only reads")}),
}, flags={"-out": Y("openssl.out", "openssl -out writes a file"),
          "-keyout": Y("openssl.out", "openssl -keyout writes a file")})

TOOLS: dict[str, Tool] = {
    "aws": Tool(AWS, opts("--region --profile --output --query --endpoint-url --color "
                          "--ca-bundle --cli-read-timeout --cli-connect-timeout")),
    "gcloud": Tool(_scan_tool("gcloud"), opts("--project --zone --region --format --filter "
                                              "--limit --account --configuration --flatten "
                                              "--sort-by --verbosity")),
    "az": Tool(_scan_tool("az"), opts("-g --resource-group -n --name --subscription -o "
                                      "--output --query -l --location")),
    "openssl": Tool(OPENSSL),
}
# fmt: on
