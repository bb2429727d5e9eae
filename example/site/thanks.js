// thanks.html: polls the order (GET /pay?order=<id>) until it is paid and its
// fiscal receipt is printed, then shows the receipt's fiscal sign and the
// printable receipt page (/receipt?order=<id>, with the QR code) inline.
(function () {
	"use strict";

	// Loaded in <head>, before the page is drawn: from here on the page shows
	// its JavaScript parts (see .js and .no-js in style.css). If this file
	// fails to load, the page stays a plain HTML one that works.
	document.documentElement.className = "js";
	if (document.readyState === "loading") {
		document.addEventListener("DOMContentLoaded", start);
	} else {
		start();
	}

	function start() {
		var STATES = {
			pending: "Ждём подтверждения оплаты…",
			paid: "Заказ оплачен",
			expired: "Время на оплату истекло. Соберите заказ заново.",
			cancelled: "Заказ отменён",
			failed: "Не удалось создать платёж. Попробуйте оформить заказ ещё раз."
		};
		var MAX_DELAY = 5000;
		var GIVE_UP = 35 * 60 * 1000; // a little over the default order_ttl

		function $(id) { return document.getElementById(id); }

		var id = new URLSearchParams(location.search).get("order");
		var started = Date.now();
		if (!id) {
			setStatus("error", "В ссылке нет номера заказа.");
			return;
		}
		$("order").textContent = id;
		var receiptURL = "/receipt?order=" + encodeURIComponent(id);
		$("receipt-link").href = receiptURL;

		function setStatus(cls, text) {
			$("status").className = "status " + cls;
			$("status-text").textContent = text;
		}

		// kopecks reads an amount string ("350.00") as whole kopecks.
		function kopecks(s) {
			var m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(s || "");
			return m ? parseInt(m[1], 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10) : 0;
		}

		// rub formats kopecks as "1 150 ₽" (or "1 150,50 ₽").
		function rub(k) {
			var whole = String(Math.floor(k / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
			var frac = k % 100;
			return whole + (frac ? "," + String(frac).padStart(2, "0") : "") + "\u00a0₽";
		}

		function show(o) {
			setStatus(o.state, STATES[o.state] || o.state);
			$("step-paid").classList.toggle("done", o.state === "paid");
			var body = $("items-body");
			body.textContent = "";
			(o.items || []).forEach(function (it) {
				var row = body.insertRow();
				row.insertCell().textContent = it.name + (it.qty > 1 ? " × " + it.qty : "");
				var sum = row.insertCell();
				sum.className = "num";
				sum.textContent = rub(kopecks(it.price) * it.qty);
			});
			var total = body.insertRow();
			total.className = "total";
			total.insertCell().textContent = "Итого";
			var t = total.insertCell();
			t.className = "num";
			t.textContent = rub(kopecks(o.amount));
			$("items").hidden = false;
			if (o.state === "paid") { showReceipt(o); forgetCart(); }
		}

		function showReceipt(o) {
			var r = o.receipt || { state: "none" };
			var contact = o.email || o.phone;
			$("receipt-box").hidden = false;
			$("step-receipt").classList.toggle("done", r.state === "done");
			var text = $("receipt-status");
			if (r.state === "done" && r.fiscal) {
				text.textContent = "Чек пробит" + (contact ? " и отправлен на " + contact : "") + ". Проверить его можно в приложении ФНС «Проверка чеков» по QR-коду.";
				$("fiscal-sign").textContent = r.fiscal.fiscalDocumentSign;
				$("fiscal-doc").textContent = r.fiscal.fiscalDocumentNumber;
				$("fiscal-fn").textContent = r.fiscal.fnNumber;
				$("fiscal").hidden = false;
				$("receipt-link").hidden = false;
				var frame = $("receipt-frame");
				if (frame.hidden) {
					frame.addEventListener("load", function () {
						try { frame.style.height = frame.contentDocument.documentElement.scrollHeight + 4 + "px"; } catch (e) { /* keep the CSS height */ }
					});
					frame.src = receiptURL;
					frame.hidden = false;
				}
			} else if (r.state === "failed") {
				text.textContent = "Касса пока не пробила чек" + (r.error ? " («" + r.error + "»)" : "") + ". Магазин пробьёт его повторно — вам ничего делать не нужно.";
			} else {
				text.textContent = "Пробиваем чек в онлайн-кассе…";
			}
		}

		// A paid order empties the cart it was made from.
		function forgetCart() {
			try {
				if (localStorage.getItem("kassa-demo-order") === id) {
					localStorage.removeItem("kassa-demo-cart");
					localStorage.removeItem("kassa-demo-order");
				}
			} catch (e) { /* no storage */ }
		}

		// finished reports whether nothing more will change on this page.
		function finished(o) {
			if (o.state === "pending") { return false; }
			if (o.state !== "paid") { return true; }
			return o.receipt && (o.receipt.state === "done" || o.receipt.state === "failed");
		}

		function poll(delay) {
			var ctl = window.AbortController ? new AbortController() : null;
			var timer = ctl && setTimeout(function () { ctl.abort(); }, 10000);
			fetch("/pay?order=" + encodeURIComponent(id), { headers: { Accept: "application/json" }, cache: "no-store", signal: ctl && ctl.signal })
				.then(function (r) {
					return r.json().then(function (body) { return { status: r.status, body: body }; }, function () { return { status: r.status, body: null }; });
				})
				.then(function (res) {
					clearTimeout(timer);
					if (res.status === 404) { setStatus("error", "Заказ не найден. Проверьте ссылку."); return; }
					if (res.status !== 200 || !res.body) { retry(delay, "Не удалось узнать статус заказа, пробуем ещё раз…"); return; }
					show(res.body);
					if (!finished(res.body) && Date.now() - started < GIVE_UP) { next(delay); }
				}, function () {
					clearTimeout(timer);
					retry(delay, "Нет связи с магазином, пробуем ещё раз…");
				});
		}

		function next(delay) {
			setTimeout(function () { poll(Math.min(Math.round(delay * 1.25), MAX_DELAY)); }, delay);
		}

		function retry(delay, text) {
			$("status-text").textContent = text;
			if (Date.now() - started < GIVE_UP) { next(Math.max(delay, 2000)); }
		}

		poll(700);
	}
})();
