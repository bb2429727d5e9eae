// Polls the order's status until it is no longer pending, and shows it.
(function () {
	"use strict";
	var id = new URLSearchParams(location.search).get("order");
	var labels = {
		pending: "Ждём оплату…",
		paid: "Оплачено ✓",
		expired: "Время на оплату истекло",
		cancelled: "Заказ отменён",
		failed: "Не удалось создать платёж"
	};
	var state = document.getElementById("state");
	if (!id) { state.textContent = "Нет номера заказа в ссылке."; return; }
	document.getElementById("order").textContent = id;

	function rub(amount) { return amount.replace(/\.00$/, "") + " ₽"; }

	function show(order) {
		state.textContent = labels[order.state] || order.state;
		state.className = "state " + order.state;
		var table = document.getElementById("items");
		table.textContent = "";
		order.items.forEach(function (it) {
			var row = table.insertRow();
			row.insertCell().textContent = it.name + (it.qty > 1 ? " × " + it.qty : "");
			var price = row.insertCell();
			price.className = "num";
			price.textContent = rub(it.price);
		});
		document.getElementById("total").textContent = "Итого: " + rub(order.amount);
		var receipt = document.getElementById("receipt");
		if (order.receipt && order.receipt.state === "done") {
			receipt.innerHTML = "";
			var link = document.createElement("a");
			link.href = "/receipt?order=" + encodeURIComponent(id);
			link.textContent = "Кассовый чек (ФП " + order.receipt.fiscal.fiscalDocumentSign + ")";
			receipt.appendChild(link);
		} else if (order.receipt && order.receipt.state === "failed") {
			receipt.textContent = "Чек не сформирован: " + order.receipt.error;
		} else if (order.state === "paid") {
			receipt.textContent = "Формируем кассовый чек…";
		}
	}

	var receiptPolls = 0;

	function poll(delay) {
		fetch("/pay?order=" + encodeURIComponent(id), { headers: { Accept: "application/json" } })
			.then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
			.then(function (res) {
				if (!res.ok) { state.textContent = res.body.error ? res.body.error.message : "Ошибка"; return; }
				show(res.body);
				var receiptComing = res.body.state === "paid" && ["none", "queued"].indexOf(res.body.receipt.state) >= 0 && ++receiptPolls < 30;
				if (res.body.state === "pending" || receiptComing) { setTimeout(function () { poll(Math.min(delay * 1.5, 5000)); }, delay); }
			})
			.catch(function () { setTimeout(function () { poll(5000); }, 5000); });
	}
	poll(1000);
})();
