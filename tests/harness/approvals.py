"""The approval responder lives in the package (``planmon.demo.approvals``) so the demo answers
approvals the same way the tests do; tests keep importing it from here."""

from planmon.demo.approvals import Responder, approval_responder

__all__ = ["Responder", "approval_responder"]
