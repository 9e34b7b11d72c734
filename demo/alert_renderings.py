"""One alert as each reader gets it: the e-mail (subject and text), the chat notification, the Security Hub finding.

    python -m demo.alert_renderings [ALERT_TYPE] [--product-arn ARN]

Prints the renderings of a sample alert (tests/support/alerts.py; TAG_MOVED_AFTER_SCAN by default), made by
the same functions the publishers use, so what it shows is what subscribers, chat channels and Security Hub
receive. `--hostile` swaps every outside name for a hostile one, to see them rendered inert.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from tagwarden.adapters.chat_publisher import chat_notification
from tagwarden.adapters.securityhub_publisher import asff_finding
from tagwarden.adapters.sns_publisher import structured_message
from tagwarden.domain.alert_text import email_subject
from tagwarden.domain.alerts import AlertType, KubernetesContext

from tests.support.alerts import sample_alerts

HOSTILE_NAME = "api <!here> @channel [click](https://evil.example)\nSeverity: INFO"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "type", nargs="?", default=AlertType.TAG_MOVED_AFTER_SCAN.value, choices=[t.value for t in AlertType]
    )
    parser.add_argument(
        "--product-arn", default="arn:aws:securityhub:eu-west-1:444455556666:product/444455556666/default"
    )
    parser.add_argument("--hostile", action="store_true", help="give the pod, namespace and user hostile names")
    args = parser.parse_args(argv)
    alert = sample_alerts()[AlertType(args.type)]
    if args.hostile:
        alert = alert.model_copy(
            update={
                "kubernetes": KubernetesContext(
                    cluster=HOSTILE_NAME,
                    namespace=HOSTILE_NAME,
                    kind="Pod",
                    name=HOSTILE_NAME,
                    user=HOSTILE_NAME,
                    audit_id=None,
                ),
                "summary": f"Pod {HOSTILE_NAME} runs something.",
            }
        )
    message = json.loads(structured_message(alert))
    out = sys.stdout
    out.write("=== E-mail (SNS protocol email; every other protocol gets `default`, the schema v1 JSON) ===\n")
    out.write(f"Subject: {email_subject(alert)}\n\n")
    out.write(message["email"])
    out.write("\n=== Chat (Amazon Q Developer custom notification, on the chat topic) ===\n")
    out.write(json.dumps(chat_notification(alert), indent=2, ensure_ascii=False) + "\n")
    out.write("\n=== Security Hub (ASFF finding, BatchImportFindings) ===\n")
    out.write(json.dumps(asff_finding(alert, args.product_arn), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
