// Keyboard shortcuts of the compare page and the review queue.
//   1..n  pick that response (in the review queue: and save at once)
//   Enter save the picked one          s  skip (review queue)
//   r     write a reason first          Esc leave a text field
const form = document.getElementById("compare-form");
if (form) {
  const review = form.dataset.review === "1";
  const picks = [...form.querySelectorAll("input[name=preferred]")];
  const confidence = form.elements.confidence;
  const output = form.querySelector("output[data-for=confidence]");
  if (confidence && output) {
    const show = () => { output.value = confidence.value; };
    confidence.addEventListener("input", show);
    show();
  }
  let sent = false;
  const submit = () => {
    if (sent || !picks.some((p) => p.checked)) return;
    sent = true;
    form.requestSubmit();
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.matches("input[type=text], input:not([type]), textarea, select");
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const n = Number.parseInt(event.key, 10);
    if (n >= 1 && n <= picks.length) {
      event.preventDefault();
      picks[n - 1].checked = true;
      picks[n - 1].focus();
      if (review) submit();
    } else if (event.key === "Enter") {
      event.preventDefault();
      submit();
    } else if (event.key === "s" && review) {
      event.preventDefault();
      window.location.assign(form.dataset.skip);
    } else if (event.key === "r") {
      event.preventDefault();
      form.elements.reason.focus();
    }
  });
}
