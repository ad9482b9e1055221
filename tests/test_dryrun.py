"""Dry-run forms of runbook commands: only what is surely side-effect free gets a form."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ddoc.contracts.dryrun import dry_run_form

K = "--dry-run=server"

CASES: list[tuple[str, str | None]] = [
    # kubectl: mutating verbs get a server-side dry run
    ("kubectl apply -f deploy.yaml", f"kubectl apply -f deploy.yaml {K}"),
    ("kubectl apply -k overlays/prod", f"kubectl apply -k overlays/prod {K}"),
    ("kubectl create namespace web", f"kubectl create namespace web {K}"),
    ("kubectl delete pod web-0 -n prod", f"kubectl delete pod web-0 -n prod {K}"),
    ("kubectl delete pods --all -n prod", f"kubectl delete pods --all -n prod {K}"),
    ("kubectl replace -f cm.yaml", f"kubectl replace -f cm.yaml {K}"),
    (
        'kubectl patch deploy web -p \'{"spec":{"replicas":0}}\'',
        f'kubectl patch deploy web -p \'{{"spec":{{"replicas":0}}}}\' {K}',
    ),
    ("kubectl scale deploy/web --replicas=3", f"kubectl scale deploy/web --replicas=3 {K}"),
    ("kubectl label node n1 disk=ssd", f"kubectl label node n1 disk=ssd {K}"),
    ("kubectl annotate pod x 'note=a b'", f"kubectl annotate pod x 'note=a b' {K}"),
    ("kubectl set image deploy/web app=web:2", f"kubectl set image deploy/web app=web:2 {K}"),
    ("kubectl set env deploy/web LOG=debug", f"kubectl set env deploy/web LOG=debug {K}"),
    (
        "kubectl set resources deploy/web --limits=cpu=1",
        f"kubectl set resources deploy/web --limits=cpu=1 {K}",
    ),
    ("kubectl expose deploy web --port=80", f"kubectl expose deploy web --port=80 {K}"),
    ("kubectl run tmp --image=busybox", f"kubectl run tmp --image=busybox {K}"),
    ("kubectl autoscale deploy web --max=5", f"kubectl autoscale deploy web --max=5 {K}"),
    ("kubectl taint nodes n1 key=v:NoSchedule", f"kubectl taint nodes n1 key=v:NoSchedule {K}"),
    ("kubectl cordon n1", f"kubectl cordon n1 {K}"),
    ("kubectl uncordon n1", f"kubectl uncordon n1 {K}"),
    ("kubectl drain n1 --ignore-daemonsets", f"kubectl drain n1 --ignore-daemonsets {K}"),
    ("kubectl rollout restart deploy/web", f"kubectl rollout restart deploy/web {K}"),
    (
        "kubectl rollout undo deploy/web --to-revision=2",
        f"kubectl rollout undo deploy/web --to-revision=2 {K}",
    ),
    # kubectl: global options before the verb
    ("kubectl -n prod delete pod x", f"kubectl -n prod delete pod x {K}"),
    ("kubectl --context prod-eu delete pod x", f"kubectl --context prod-eu delete pod x {K}"),
    (
        "kubectl --kubeconfig=/etc/k.conf cordon n1",
        f"kubectl --kubeconfig=/etc/k.conf cordon n1 {K}",
    ),
    ("kubectl --frobnicate x delete pod y", None),  # unknown option: is `x` its value?
    # kubectl: an existing --dry-run is replaced in place
    ("kubectl delete pod x --dry-run=client -n y", f"kubectl delete pod x {K} -n y"),
    ("kubectl delete pod x --dry-run", f"kubectl delete pod x {K}"),
    ("kubectl delete pod x --dry-run=none", f"kubectl delete pod x {K}"),
    (f"kubectl apply -f x.yaml {K}", f"kubectl apply -f x.yaml {K}"),
    ("kubectl --dry-run=none delete pod x", f"kubectl {K} delete pod x"),
    # kubectl: quoting kept byte for byte
    (
        'kubectl scale deploy "$DEPLOY" -n "${DDOC_VAR_namespace}" --replicas=3',
        f'kubectl scale deploy "$DEPLOY" -n "${{DDOC_VAR_namespace}}" --replicas=3 {K}',
    ),
    ("kubectl delete pod 'web 0'", f"kubectl delete pod 'web 0' {K}"),
    ("kubectl delete pod web\\ 0", f"kubectl delete pod web\\ 0 {K}"),
    ("kubectl delete pod a#b", f"kubectl delete pod a#b {K}"),
    ("kubectl delete pod x  ", f"kubectl delete pod x {K}  "),
    # kubectl: no dry-run form
    ("kubectl get pods -n prod", None),
    ("kubectl describe pod x", None),
    ("kubectl logs web-0 --tail=100", None),
    ("kubectl top pods", None),
    ("kubectl diff -f x.yaml", None),
    ("kubectl rollout status deploy/web", None),
    ("kubectl rollout pause deploy/web", None),
    ("kubectl rollout resume deploy/web", None),
    ("kubectl exec -it x -- rm -rf /", None),
    ("kubectl cp x:/tmp/a ./a", None),
    ("kubectl edit deploy web", None),
    ("kubectl port-forward svc/web 8080:80", None),
    ("kubectl set", None),
    ("kubectl run tmp --image=busybox --command -- sleep 1", None),  # `--` ends the options
    ("kubectl delete --raw /api/v1/namespaces/prod", None),  # --raw ignores --dry-run
    ("kubectl create -f x.yaml --edit", None),
    ("kubectl replace --force -f x.yaml", None),
    ("kubectl apply --force -f x.yaml", None),
    ("kubectl apply edit-last-applied deploy/web", None),
    ("kubectl-foo delete pod x", None),
    ("/usr/local/bin/kubectl delete pod x", None),
    ("kubectl", None),
    # terraform
    ("terraform apply", "terraform plan"),
    ("terraform apply -auto-approve", "terraform plan"),
    ("terraform apply --auto-approve -var 'region=eu'", "terraform plan -var 'region=eu'"),
    ("terraform apply -var-file prod.tfvars -auto-approve", "terraform plan -var-file prod.tfvars"),
    (
        "terraform apply -target=module.web -input=false",
        "terraform plan -target=module.web -input=false",
    ),
    ("terraform -chdir=infra/prod apply -auto-approve", "terraform -chdir=infra/prod plan"),
    ("terraform destroy", "terraform plan -destroy"),
    (
        "terraform destroy -auto-approve -target=aws_instance.x",
        "terraform plan -destroy -target=aws_instance.x",
    ),
    ("terraform apply tfplan", None),
    ("terraform apply -auto-approve tfplan", None),
    ("terraform apply -frobnicate tfplan", None),
    ("terraform plan", None),
    ("terraform init", None),
    ("terraform state rm aws_instance.x", None),
    ("terraform -chdir infra apply", None),
    # helm
    (
        "helm upgrade --install web ./chart -f prod.yaml",
        "helm upgrade --install web ./chart -f prod.yaml --dry-run",
    ),
    ("helm install web bitnami/nginx", "helm install web bitnami/nginx --dry-run"),
    ("helm uninstall web -n prod", "helm uninstall web -n prod --dry-run"),
    ("helm rollback web 3", "helm rollback web 3 --dry-run"),
    ("helm -n prod rollback web 3", "helm -n prod rollback web 3 --dry-run"),
    ("helm upgrade web ./chart --dry-run=none", "helm upgrade web ./chart --dry-run"),
    ("helm upgrade web ./chart --dry-run=server", "helm upgrade web ./chart --dry-run=server"),
    ("helm upgrade web ./chart --post-renderer ./kustomize.sh", None),
    ("helm list -A", None),
    ("helm repo update", None),
    # ansible
    # ansible-playbook --check still runs tasks marked check_mode: false: no form
    ("ansible-playbook -i inventory site.yml", None),
    ("ansible all -m ping", None),
    # aws ec2
    (
        "aws ec2 stop-instances --instance-ids i-0abc",
        "aws ec2 stop-instances --instance-ids i-0abc --dry-run",
    ),
    (
        "aws ec2 reboot-instances --instance-ids i-1",
        "aws ec2 reboot-instances --instance-ids i-1 --dry-run",
    ),
    (
        "aws --region eu-west-1 ec2 terminate-instances --instance-ids i-1",
        "aws --region eu-west-1 ec2 terminate-instances --instance-ids i-1 --dry-run",
    ),
    (
        "aws ec2 create-snapshot --volume-id vol-1",
        "aws ec2 create-snapshot --volume-id vol-1 --dry-run",
    ),
    (
        "aws ec2 start-instances --instance-ids i-1 --no-dry-run",
        "aws ec2 start-instances --instance-ids i-1 --no-dry-run --dry-run",
    ),
    ("aws ec2 describe-instances", None),
    ("aws s3 rm s3://bucket/key", None),
    ("aws rds reboot-db-instance --db-instance-identifier db", None),
    # rsync
    ("rsync -avz --delete src/ backup:/srv/", "rsync -avz --delete src/ backup:/srv/ --dry-run"),
    ("rsync -a src/ dst/ --dry-run", "rsync -a src/ dst/ --dry-run"),
    ("rsync -avz -e 'ssh -p 2222' src/ host:/dst/", None),  # -e runs a program, dry run or not
    ("rsync -a --rsync-path='sudo rsync' src/ host:/dst/", None),
    ("rsync -a --log-file=/var/log/r.log src/ dst/", None),
    # apt-get
    ("apt-get install -y nginx", "apt-get install -y nginx --simulate"),
    ("apt-get -y remove nginx", "apt-get -y remove nginx --simulate"),
    (
        "apt-get -o Dpkg::Options::=--force-confold upgrade",
        "apt-get -o Dpkg::Options::=--force-confold upgrade --simulate",
    ),
    ("apt-get purge nginx", "apt-get purge nginx --simulate"),
    ("apt-get autoremove", "apt-get autoremove --simulate"),
    ("apt-get update", None),
    ("apt install nginx", None),
    # prefixes: sudo, env, assignments
    ("sudo kubectl drain n1", f"sudo kubectl drain n1 {K}"),
    ("sudo -u deploy -E helm upgrade web ./c", "sudo -u deploy -E helm upgrade web ./c --dry-run"),
    ("sudo -- apt-get install nginx", "sudo -- apt-get install nginx --simulate"),
    ("sudo -s kubectl delete pod x", None),
    ("sudo -i terraform apply", None),
    (
        "KUBECONFIG=/etc/k.conf kubectl delete pod x",
        f"KUBECONFIG=/etc/k.conf kubectl delete pod x {K}",
    ),
    (
        "env AWS_PROFILE=prod aws ec2 stop-instances --instance-ids i-1",
        "env AWS_PROFILE=prod aws ec2 stop-instances --instance-ids i-1 --dry-run",
    ),
    ("TF_IN_AUTOMATION=1 terraform apply -auto-approve", "TF_IN_AUTOMATION=1 terraform plan"),
    ("PATH=/tmp/bin kubectl delete pod x", None),
    ("LD_PRELOAD=/tmp/x.so kubectl delete pod x", None),
    ("env -i kubectl delete pod x", None),
    # a trailing read-only filter is kept
    ("kubectl apply -f x.yaml | grep configured", f"kubectl apply -f x.yaml {K} | grep configured"),
    ("helm upgrade web ./c | tail -n 5", "helm upgrade web ./c --dry-run | tail -n 5"),
    ("kubectl apply -f x.yaml | tee out.log", None),
    ("cat x.yaml | kubectl apply -f -", None),
    # compound, multi-line and expansions
    ("kubectl delete pod x && kubectl get pods", None),
    ("kubectl delete pod x; echo done", None),
    ("kubectl delete pod x || true", None),
    ("kubectl delete pod x &", None),
    ("kubectl delete pod x\nkubectl get pods", None),
    ("kubectl apply \\\n  -f x.yaml", None),
    ("kubectl delete pod $(cat pod.txt)", None),
    ('kubectl delete pod "$(cat pod.txt)"', None),
    ("kubectl delete pod `cat pod.txt`", None),
    ("kubectl apply -f x.yaml > out.log", None),
    ("kubectl apply -f x.yaml 2>&1", None),
    ("kubectl apply -f - <<EOF", None),
    ("(kubectl delete pod x)", None),
    ("kubectl delete pod $POD", None),  # unquoted: could split into more words
    ("kubectl delete pod web-*", None),
    ("kubectl delete pod x # cleanup", None),
    ("kubectl delete pod 'x", None),
    # lookalikes and everything else
    ("echo kubectl delete pod x", None),
    ("time kubectl delete pod x", None),
    ("systemctl restart nginx", None),
    ("rm -rf /var/cache/app", None),
    ("docker rm -f web", None),
    ("psql -c 'DELETE FROM jobs'", None),
    ("curl -X POST https://example.com/deploy", None),
    ("", None),
    ("   ", None),
]


@pytest.mark.parametrize(("command", "expected"), CASES)
def test_dry_run_form(command: str, expected: str | None) -> None:
    assert dry_run_form(command) == expected


def _argv(command: str) -> list[str]:
    """The words bash gives the command, with a printer in front so nothing runs."""
    env = {"DEPLOY": "web app", "DDOC_VAR_namespace": "prod"}
    out = subprocess.run(
        ["/bin/bash", "-c", "printf '%s\\0' " + command],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split("\0")[:-1]


@pytest.mark.parametrize(
    "command",
    [
        c
        for c, form in CASES
        if form is not None and form.startswith(c.rstrip() + " ") and "|" not in c
    ],
)
def test_appended_flag_is_one_more_word_for_bash(command: str) -> None:
    form = dry_run_form(command)
    assert form is not None
    added = form[len(command.rstrip()) :].split()
    assert _argv(form) == _argv(command) + added


MARKERS = ("--dry-run", "plan", "--check", "--simulate")


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(command: str) -> None:
    form = dry_run_form(command)
    assert form is None or any(m in form for m in MARKERS)


_VOCABULARY = [
    "kubectl", "helm", "terraform", "aws", "ec2", "rsync", "apt-get", "ansible-playbook",
    "sudo", "env", "X=1", "apply", "delete", "destroy", "upgrade", "install", "rollout",
    "restart", "set", "image", "stop-instances", "-n", "prod", "-u", "--", "-", "|", "grep",
    "-auto-approve", "-chdir=x", "--dry-run", "--dry-run=none", "--force", "-e", "-avz",
    "'a b'", '"$X"', "\\ ", "#", "$X", ";", "&&", "\n", "\t", "''",
]  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_VOCABULARY), max_size=8))
def test_forms_of_command_like_text_carry_a_marker(words: list[str]) -> None:
    form = dry_run_form(" ".join(words))
    assert form is None or any(m in form for m in MARKERS)
