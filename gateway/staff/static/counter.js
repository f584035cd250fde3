// The counter form: each fee line's subtotal and the total as quantities change; no charge of 0 yen.
(function () {
  const rows = document.querySelectorAll("tr[data-fee]");
  const written = document.getElementById("sale-form").dataset.yen || "{n}円";  // "{n}円" or "{n} yen": the page's language
  const yen = (n) => written.replace("{n}", n.toLocaleString("ja-JP"));
  function update() {
    let total = 0;
    rows.forEach((row) => {
      const q = Math.max(0, parseInt(row.querySelector(".qty").value || "0", 10) || 0);
      const sub = q * parseInt(row.dataset.fee, 10);
      row.querySelector(".subtotal").textContent = yen(sub);
      total += sub;
    });
    document.getElementById("total").textContent = yen(total);
    document.getElementById("charge").disabled = total === 0;
  }
  document.querySelectorAll(".qty").forEach((input) => input.addEventListener("input", update));
  update();
})();
