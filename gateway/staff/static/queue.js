// The exception queue: "select all shown", and keyboard shortcuts for the common moves.
// The page works without this script: every row has its own checkbox and every action a button.
(function () {
  const table = document.getElementById("exceptions");
  if (!table) return;
  const all = document.getElementById("select-all");
  const boxes = () => Array.from(table.querySelectorAll("input[name=ids]"));
  if (all) {
    all.hidden = false;
    all.addEventListener("change", () => boxes().forEach((box) => { box.checked = all.checked; }));
  }
  const links = () => Array.from(table.querySelectorAll("tbody td a[href*='/staff/exceptions/']"));
  let current = -1;
  function focusRow(index) {
    const rows = links();
    if (!rows.length) return;
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows[current].focus();
  }
  function typing(target) {
    return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
  }
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const rows = links();
    const at = rows.indexOf(document.activeElement);
    if (at >= 0) current = at;
    if (event.key === "j") { focusRow(current + 1); event.preventDefault(); }
    else if (event.key === "k") { focusRow(current - 1); event.preventDefault(); }
    else if (event.key === "x" && current >= 0) {
      const box = rows[current].closest("tr").querySelector("input[name=ids]");
      if (box) box.checked = !box.checked;
      event.preventDefault();
    } else if (event.key === "a") {
      const button = document.getElementById("assign-me");
      if (button && boxes().some((box) => box.checked)) { button.click(); event.preventDefault(); }
    } else if (event.key === "/") {
      const first = document.querySelector("#filters select, #filters input");
      if (first) { first.focus(); event.preventDefault(); }
    } else if (event.key === "?") {
      const help = document.getElementById("shortcuts");
      help.open = !help.open;
      event.preventDefault();
    }
  });
})();
