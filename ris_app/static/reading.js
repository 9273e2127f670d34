// The report page's signing step (templates/reading_report.html): "Sign" and "Sign and
// next" open a dialog that shows who and what is signed; only its confirm button signs.
// Without this script the same buttons reach the server's confirm page instead.
(function () {
  "use strict";
  const form = document.getElementById("report-form");
  const dialog = document.getElementById("sign-dialog");
  if (!form || !dialog || typeof dialog.showModal !== "function") return;
  const confirmButton = document.getElementById("confirm-sign");
  const inputs = dialog.querySelectorAll("input, #confirm-sign");

  function setEnabled(on) {
    inputs.forEach(function (el) { el.disabled = !on; });
  }

  function open(action, label) {
    confirmButton.value = action;
    confirmButton.textContent = label;
    setEnabled(true);
    dialog.showModal();
    confirmButton.focus();
  }

  [["sign", "Yes, sign (final)"], ["sign-next", "Yes, sign and open the next study"]].forEach(function (pair) {
    const button = document.getElementById(pair[0]);
    if (!button) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      open(button.value, pair[1]);
    });
  });
  document.getElementById("cancel-sign").addEventListener("click", function () { dialog.close(); });
  // Closed by Cancel or Escape: the confirmation fields go quiet again, so "Save draft"
  // is not held up by the acknowledgement box and sends no confirmation.
  dialog.addEventListener("close", function () { setEnabled(false); });
})();
