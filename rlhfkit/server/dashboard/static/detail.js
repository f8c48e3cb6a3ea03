// Live values next to the sliders of the feedback forms.
for (const output of document.querySelectorAll("output[data-for]")) {
  const input = output.closest("form").elements[output.dataset.for];
  if (!input) continue;
  const show = () => { output.value = input.value; };
  input.addEventListener("input", show);
  show();
}
