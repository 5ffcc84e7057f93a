// planmon's one script. Airflow's UI shows planmon in an iframe sandboxed without top-level
// navigation ("allow-scripts allow-same-origin allow-forms allow-downloads"), so a link meant for
// Airflow (target="_top": a DAG run, Required actions) would be blocked, or, without the target,
// would load a second Airflow inside the frame. Inside that frame a click on such a link is carried
// out by an anchor of Airflow's own (same-origin) document, which the sandbox does not restrict.
// Outside a frame the script does nothing and the links behave as plain links.
(function () {
  "use strict";
  if (window.top === window.self) {
    return;
  }
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    var link = event.target instanceof Element ? event.target.closest("a[target=_top][href]") : null;
    if (link === null) {
      return;
    }
    var top;
    try {
      top = window.top.document; // throws when the framing page is of another origin
    } catch (error) {
      return;
    }
    event.preventDefault();
    var anchor = top.createElement("a");
    anchor.href = link.href;
    anchor.hidden = true;
    top.body.appendChild(anchor);
    anchor.click();
    anchor.remove();
  });
})();
