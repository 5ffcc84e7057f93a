"""The approval body as Airflow's Required Actions page renders it (CommonMark): every block stands
alone, the plan diff is a list with one item per change, the SQL keeps its lines, and the body links
to planmon's regression page when a base URL is set."""

from __future__ import annotations

from markdown_it import MarkdownIt
from sqlalchemy import update

from planmon.config import load_settings
from planmon.remediation.workflow import FixedConnections, RemediationWorkflow
from planmon.store import Repository
from planmon.store.schema import regression
from tests.unit.remediation.conftest import seed_with_plans

DIFF = {
    "text": "statement 0: shape a -> b\n  orders: Index Scan (orders_customer) -> Seq Scan\n  filter added",
    "statement_index": 0,
    "before_hash": "a",
    "after_hash": "b",
    "changes": [
        {"kind": "access_changed", "message": "orders: Index Scan (orders_customer) -> Seq Scan"},
        {"kind": "predicate_added", "message": "orders: filter (customer = $1) AND (note <> '*_x_*')"},
        {"kind": "join_changed", "message": "Nested Loop -> Hash Join"},
    ],
}


def _body(repository: Repository, **settings: str) -> str:
    seeded = seed_with_plans(repository)
    with repository.engine.begin() as connection:
        connection.execute(
            update(regression).where(regression.c.id == seeded.regression_id).values(diff=DIFF)
        )
    workflow = RemediationWorkflow(repository, load_settings(settings), FixedConnections())
    return workflow.propose(seeded.regression_id).body


def test_the_diff_is_a_list_and_every_section_stands_alone(repository: Repository) -> None:
    html = MarkdownIt("commonmark").render(_body(repository))
    diff_section = html.split("<h3>Plan diff</h3>")[1].split("<h3>")[0]
    items = [item.split("</li>")[0] for item in diff_section.split("<li>")[1:]]
    assert items == [
        "orders: Index Scan (orders_customer) -&gt; Seq Scan",
        "orders: filter (customer = $1) AND (note &lt;&gt; '*_x_*')",  # shown as written, not emphasis
        "Nested Loop -&gt; Hash Join",
    ]
    for heading in ("Findings", "SQL to run", "Rollback"):
        assert f"<h3>{heading}</h3>" in html
    assert '<pre><code class="language-sql">CREATE INDEX CONCURRENTLY orders_customer' in html
    assert "<p><strong>Expected effect:</strong>" in html
    paragraphs = [p.split("</p>")[0] for p in html.split("<p>")[1:]]
    assert not any("Expected effect" in p and "Remediation id" in p for p in paragraphs)


def test_the_body_links_to_the_regression_page_when_a_base_url_is_set(repository: Repository) -> None:
    body = _body(repository, PLANMON_BASE_URL="https://airflow.example.test/")
    html = MarkdownIt("commonmark").render(body)
    assert 'href="https://airflow.example.test/planmon/regressions/' in html


def test_without_a_base_url_there_is_no_link(repository: Repository) -> None:
    assert "](" not in _body(repository)


def test_a_diff_of_generic_plans_says_so_first(repository: Repository) -> None:
    seeded = seed_with_plans(repository)
    noted = {**DIFF, "notes": ["current: estimated generic plan; the executed plan may differ"]}
    with repository.engine.begin() as connection:
        connection.execute(
            update(regression).where(regression.c.id == seeded.regression_id).values(diff=noted)
        )
    body = (
        RemediationWorkflow(repository, load_settings({}), FixedConnections())
        .propose(seeded.regression_id)
        .body
    )
    diff_section = MarkdownIt("commonmark").render(body).split("<h3>Plan diff</h3>")[1]
    assert diff_section.lstrip().startswith(
        "<p><strong>Note:</strong> current: estimated generic plan; the executed plan may differ</p>"
    )


def _sections(body: str) -> dict[str, str]:
    html = MarkdownIt("commonmark").render(body)
    return {part.split("</h3>")[0]: part.split("</h3>")[1] for part in html.split("<h3>")[1:]}


def test_rails_passed_and_the_prediction_have_their_sections(repository: Repository) -> None:
    seeded = seed_with_plans(repository)
    workflow = RemediationWorkflow(repository, load_settings({}), FixedConnections())
    proposed = workflow.propose(seeded.regression_id)
    before = _sections(proposed.body)
    assert "not checked yet" in before["Rails passed"]
    # no collection connection: the prediction says why there is none
    assert "no prediction: the target's collection connection does not resolve" in before["Predicted effect"]
    workflow.gate(proposed.id)  # the rails run (and record what they looked at)
    after = _sections(workflow.describe(proposed.id, approval_url="https://a.test/ra").body)
    items = [item.split("</li>")[0] for item in after["Rails passed"].split("<li>")[1:]]
    assert items[0] == "mode approve: runs only after a person approves"
    assert "no maintenance windows: any time" in items and items[-1].startswith("checked at ")
    assert 'href="https://a.test/ra"' in after["Links"]


def test_a_prediction_that_contradicts_the_proposal_is_a_warning(repository: Repository) -> None:
    import json

    from planmon.engines.postgres.predict import judge_hypothetical
    from planmon.remediation.workflow import approval_body
    from tests.unit.engines.test_postgres_predict import RECORDED

    seeded = seed_with_plans(repository)
    workflow = RemediationWorkflow(repository, load_settings({}), FixedConnections())
    record = workflow.propose(seeded.regression_id).remediation
    ignored = json.loads((RECORDED / "ignores_index.json").read_text())
    prediction = judge_hypothetical(ignored["plan"], ignored["oid"], None, index_name="orders_note")
    body = approval_body(workflow.context(record), record, [], prediction=prediction)
    section = _sections(body)["Predicted effect"]
    assert (
        "<p><strong>Warning:</strong> the planner would not use orders_note: the prediction contradicts"
        in section
    )


def test_predictions_switched_off_say_so(repository: Repository) -> None:
    seeded = seed_with_plans(repository)
    settings = load_settings({"PLANMON_REMEDIATION_PREDICT": "false"})
    body = RemediationWorkflow(repository, settings, FixedConnections()).propose(seeded.regression_id).body
    assert "no prediction: PLANMON_REMEDIATION_PREDICT is off" in _sections(body)["Predicted effect"]
