"""Rule tables for cluster and deploy tooling: kubectl, helm, terraform, git."""

from __future__ import annotations

from ddoc.runbooks.risk.rules import G, R, Tool, Y, greens, opts, reds, yellows

# fmt: off
KUBECTL_VALUE_OPTS = opts(
    "-n --namespace --context --cluster --kubeconfig --user -l --selector -o --output -c "
    "--container -f --filename -s --server --token --as --as-group --field-selector --sort-by "
    "--tail --since --since-time -L --label-columns --template -p --patch --type --replicas "
    "--image --timeout --grace-period --for -k --kustomize --request-timeout -v --revision "
    "--to-revision --pod-running-timeout --max-log-requests --limit-bytes --overrides "
    "--restart --env --port --address --field-manager --chunk-size --subresource --cpu-percent"
)

KUBECTL = Y("kubectl.unknown", "unrecognised kubectl subcommand: not proven read-only", sub={
    **greens("kubectl", "get describe logs top explain version api-resources api-versions "
             "cluster-info events wait diff kustomize completion options", "only reads"),
    "auth": Y("kubectl.auth", "kubectl auth changes RBAC", sub={
        **greens("kubectl.auth", "can-i whoami", "only reads")}),
    "config": Y("kubectl.config", "kubectl config changes the local kubeconfig", sub={
        **greens("kubectl.config", "view get-contexts current-context get-clusters get-users",
                 "only reads")}),
    "rollout": Y("kubectl.rollout", "kubectl rollout changes a rollout", sub={
        **greens("kubectl.rollout", "status history", "only reads"),
        **yellows("kubectl.rollout", "restart undo pause resume", "changes a rollout (reversible)"),
    }),
    "plugin": G("kubectl.plugin", "kubectl plugin lists plugins"),
    **yellows("kubectl", "scale cordon uncordon label annotate patch create set edit autoscale "
              "taint expose debug port-forward cp run attach proxy certificate exec",
              "changes cluster state (reversible)"),
    "apply": Y("kubectl.apply", "kubectl apply changes resources (reversible)", flags={
        "--prune": R("kubectl.apply.prune", "kubectl apply --prune deletes resources"),
        "--force": R("kubectl.apply.force", "kubectl apply --force deletes and recreates"),
    }),
    "replace": Y("kubectl.replace", "kubectl replace changes resources", flags={
        "--force": R("kubectl.replace.force", "kubectl replace --force deletes and recreates"),
    }),
    "delete": R("kubectl.delete", "kubectl delete removes resources"),
    "drain": R("kubectl.drain", "kubectl drain evicts every pod from a node"),
})

HELM = Y("helm.unknown", "unrecognised helm subcommand: not proven read-only", sub={
    **greens("helm", "list ls status get history hist show inspect template lint version "
             "search env verify diff", "only reads"),
    "repo": Y("helm.repo", "helm repo changes local repositories", sub={
        "list": G("helm.repo.list", "helm repo list only reads")}),
    "dependency": Y("helm.dependency", "helm dependency changes chart dependencies", sub={
        "list": G("helm.dependency.list", "helm dependency list only reads")}),
    "plugin": Y("helm.plugin", "helm plugin changes plugins", sub={
        "list": G("helm.plugin.list", "helm plugin list only reads")}),
    **yellows("helm", "rollback install test package pull fetch push registry create",
              "changes a release (reversible)"),
    "upgrade": Y("helm.upgrade", "helm upgrade changes a release (reversible by rollback)", flags={
        "--force": R("helm.upgrade.force", "helm upgrade --force deletes and recreates"),
    }),
    **reds("helm", "uninstall delete del un", "removes a release"),
})

TERRAFORM = Y("terraform.unknown", "unrecognised terraform subcommand: not proven read-only", sub={
    **greens("terraform", "plan show output validate version providers graph console metadata",
             "only reads"),
    "fmt": Y("terraform.fmt", "terraform fmt rewrites files", modes={
        "-check": G("terraform.fmt.check", "terraform fmt -check only reads")}),
    "state": Y("terraform.state", "terraform state changes state", sub={
        **greens("terraform.state", "list show pull", "only reads"),
        "mv": Y("terraform.state.mv", "terraform state mv moves state (reversible)"),
        **reds("terraform.state", "rm push", "rewrites state with no automatic undo"),
    }),
    "workspace": Y("terraform.workspace", "terraform workspace changes workspaces", sub={
        **greens("terraform.workspace", "list show", "only reads"),
        "delete": R("terraform.workspace.delete", "terraform workspace delete drops its state"),
    }),
    **yellows("terraform", "init get import refresh taint untaint force-unlock login logout test",
              "changes state or the working directory"),
    # apply has no automatic undo: rolling back means another reviewed apply.
    "apply": R("terraform.apply", "terraform apply changes infrastructure with no automatic undo"),
    "destroy": R("terraform.destroy", "terraform destroy deletes infrastructure"),
}, flags={
    "-auto-approve": R("terraform.auto_approve", "-auto-approve skips the review of a change"),
    "--auto-approve": R("terraform.auto_approve", "-auto-approve skips the review of a change"),
})

_GIT_FORCE = R("git.push.force", "a forced or deleting push rewrites remote history")

GIT = Y("git.unknown", "unrecognised git subcommand: not proven read-only", sub={
    **greens("git", "status log diff show fetch blame grep rev-parse describe ls-files "
             "ls-remote ls-tree shortlog cat-file count-objects fsck whatchanged cherry "
             "name-rev merge-base verify-commit version help", "only reads"),
    "branch": G("git.branch", "git branch lists branches", flags={
        "-d": Y("git.branch.delete", "git branch -d deletes a merged branch"),
        "--delete": Y("git.branch.delete", "git branch -d deletes a merged branch"),
        "-m": Y("git.branch.rename", "git branch -m renames a branch"),
        "-M": Y("git.branch.rename", "git branch -m renames a branch"),
        "-D": R("git.branch.force_delete", "git branch -D deletes unmerged work"),
    }),
    "remote": G("git.remote", "git remote lists remotes", sub={
        "show": G("git.remote.show", "git remote show only reads"),
        "*": Y("git.remote.change", "git remote changes remote configuration"),
    }),
    "reflog": G("git.reflog", "git reflog only reads", sub={
        **reds("git.reflog", "expire delete", "discards recovery history")}),
    "config": Y("git.config", "git config changes configuration", modes={
        k: G("git.config.get", "git config --get only reads")
        for k in ("--get", "--get-all", "--get-regexp", "--list", "-l")}),
    "tag": Y("git.tag", "git tag creates a tag", modes={
        "-l": G("git.tag.list", "git tag -l only reads"),
        "--list": G("git.tag.list", "git tag -l only reads")}),
    "stash": Y("git.stash", "git stash changes the working tree", sub={
        **greens("git.stash", "list show", "only reads"),
        **reds("git.stash", "drop clear", "discards stashed work"),
    }),
    **yellows("git", "pull checkout switch restore commit merge rebase cherry-pick revert add rm "
              "mv init clone gc prune am apply bisect submodule worktree lfs update-ref archive",
              "changes the repository (reversible)"),
    "push": Y("git.push", "git push publishes commits", flags={
        k: _GIT_FORCE for k in ("--force", "-f", "--force-with-lease", "--delete", "-d",
                                "--mirror", "--prune")}),
    "reset": Y("git.reset", "git reset moves a branch", flags={
        "--hard": R("git.reset.hard", "git reset --hard discards uncommitted work")}),
    "clean": R("git.clean", "git clean deletes untracked files", modes={
        "-n": G("git.clean.dry_run", "git clean -n only lists"),
        "--dry-run": G("git.clean.dry_run", "git clean -n only lists")}),
    **reds("git", "filter-branch filter-repo", "rewrites history"),
})

TOOLS: dict[str, Tool] = {
    "kubectl": Tool(KUBECTL, KUBECTL_VALUE_OPTS),
    "helm": Tool(HELM, opts("-n --namespace --kube-context --kubeconfig -f --values --set "
                            "--set-string --set-file --version --timeout -o --output --repo "
                            "--revision --max")),
    "terraform": Tool(TERRAFORM, opts("-var -var-file -target -out -state -state-out -backup "
                                      "-replace -lock-timeout -parallelism")),
    "git": Tool(GIT, opts("-C -c --git-dir --work-tree -m -b -B -o --author --format")),
}
# fmt: on
