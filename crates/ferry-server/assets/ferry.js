// Ferry's one script: confirmations and select-all boxes. Every form works
// without it (the server checks everything again).
document.addEventListener("DOMContentLoaded", () => {
  // <button data-confirm="text">: ask before submitting.
  document.querySelectorAll("[data-confirm]").forEach((el) => {
    el.addEventListener("click", (ev) => {
      if (!window.confirm(el.getAttribute("data-confirm"))) {
        ev.preventDefault();
      }
    });
  });
  // <input type=checkbox data-select-all="GROUP">: ticks every
  // <input data-group="GROUP">.
  document.querySelectorAll("[data-select-all]").forEach((box) => {
    box.addEventListener("change", () => {
      const group = box.getAttribute("data-select-all");
      document.querySelectorAll(`[data-group="${group}"]`).forEach((c) => { c.checked = box.checked; });
    });
  });
  // <input data-filter="TABLE-ID">: hides the rows of that table whose text
  // does not contain what is typed.
  document.querySelectorAll("[data-filter]").forEach((input) => {
    input.addEventListener("input", () => {
      const needle = input.value.toLowerCase();
      document.querySelectorAll(input.getAttribute("data-filter")).forEach((row) => {
        row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
      });
    });
  });
});
