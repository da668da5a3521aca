"""Pod discovery for Prometheus: a SUBSTITUTE for ``kubernetes_sd_configs`` (role pod).

Debian's ``prometheus`` (2.42.0+ds) is built without the Kubernetes service discovery (its config
parser rejects ``kubernetes_sd_configs``). This process lists the pods from the API server as the
``prometheus`` ServiceAccount (allowed to list and watch pods, nothing else) and serves them in
Prometheus's ``http_sd_configs`` format with the ``__meta_kubernetes_pod_*`` labels that ``role: pod``
gives a target (one target per container port, as upstream), so the relabelling in ``dataplane.py`` is
the one a real ``kubernetes_sd_configs`` job uses. Everything after the target list (scrapes of the
pods' ``/metrics`` on their pod IPs, storage, queries) is the real Prometheus. Standard library only.

    python pod_sd.py --server URL --ca FILE --token-file FILE --port N
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``http_sd`` groups: one per container port of each pod with an IP (and one for a pod without ports)."""
    out = []
    for pod in pods:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
        ip = status.get("podIP")
        if not ip:
            continue
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        base = {
            "__meta_kubernetes_namespace": meta["namespace"], "__meta_kubernetes_pod_name": meta["name"],
            "__meta_kubernetes_pod_ip": ip, "__meta_kubernetes_pod_uid": meta.get("uid", ""),
            "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
            "__meta_kubernetes_pod_phase": status.get("phase", ""), "__meta_kubernetes_pod_ready": str(ready).lower(),
        }
        for kind in ("label", "annotation"):
            for key, value in (meta.get(f"{kind}s") or {}).items():
                base[f"__meta_kubernetes_pod_{kind}_{_name(key)}"] = value
                base[f"__meta_kubernetes_pod_{kind}present_{_name(key)}"] = "true"
        ports = [(c, p) for c in spec.get("containers") or [] for p in c.get("ports") or []]
        if not ports:
            out.append({"targets": [ip], "labels": base})
        for container, port in ports:
            labels = {**base, "__meta_kubernetes_pod_container_name": container["name"],
                      "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                      "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                      "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP")}
            out.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": labels})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(cafile=str(args.ca))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            req = urllib.request.Request(f"{args.server}/api/v1/pods",
                                         headers={"Authorization": f"Bearer {args.token_file.read_text().strip()}"})
            try:
                with urllib.request.urlopen(req, context=context, timeout=10) as resp:
                    body = json.dumps(targets(json.loads(resp.read())["items"])).encode()
            except OSError as exc:
                self.send_error(502, f"listing pods failed: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *items: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"pod discovery for Prometheus on http://127.0.0.1:{args.port}/targets", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
