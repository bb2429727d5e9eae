// The cart of the demo shop. Without this script every product card is a
// plain form that buys one product; with it, the cards fill a cart kept in
// localStorage, and the checkout posts the cart as JSON to kassa_checkout.
// Prices here are for display only: the server prices the order from its
// catalog.
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
		var STORAGE_KEY = "kassa-demo-cart";
		var MAX_QTY = 99;

		// Messages for the checkout's stable error codes (README: kassa_checkout).
		var MESSAGES = {
			unknown_sku: "Одного из товаров больше нет в продаже. Обновите страницу и соберите корзину заново.",
			bad_quantity: "Неверное количество товара: нужно целое число от 1.",
			empty_cart: "Корзина пуста: добавьте хотя бы один товар.",
			too_many_items: "В корзине слишком много разных товаров. Оформите их двумя заказами.",
			amount_too_large: "Сумма заказа слишком велика.",
			bad_amount: "Неверная сумма заказа.",
			amount_out_of_range: "Сумма заказа вне допустимых пределов.",
			amount_not_accepted: "Этот способ оплаты не принимает такую сумму (CrystalPAY — только целые рубли). Выберите другой способ оплаты.",
			bad_email: "Проверьте e-mail: нужен адрес вида name@example.ru.",
			bad_phone: "Проверьте телефон: нужен номер из 10–15 цифр, например +7 999 123-45-67.",
			bad_request: "Магазин не понял запрос. Обновите страницу и попробуйте ещё раз.",
			bad_items: "Магазин не понял состав заказа. Обновите страницу и попробуйте ещё раз.",
			bad_idempotency_key: "Магазин не понял запрос. Обновите страницу и попробуйте ещё раз.",
			idempotency_key_too_short: "Магазин не понял запрос. Обновите страницу и попробуйте ещё раз.",
			unsupported_media_type: "Магазин не понял запрос. Обновите страницу и попробуйте ещё раз.",
			method_not_allowed: "Магазин не понял запрос. Обновите страницу и попробуйте ещё раз.",
			body_too_large: "Корзина слишком большая для одного заказа. Уберите часть товаров.",
			order_in_progress: "Этот заказ уже создаётся. Подождите несколько секунд и нажмите «Оплатить» ещё раз.",
			order_closed: "Этот заказ закрыт и его уже нельзя оплатить. Нажмите «Оплатить» ещё раз, чтобы оформить новый.",
			idempotency_key_reused: "Корзина изменилась. Нажмите «Оплатить» ещё раз.",
			provider_unavailable: "Платёжный сервис недоступен, попробуйте через минуту.",
			storage_unavailable: "Магазин временно не может принять заказ, попробуйте через минуту.",
			provider_error: "Платёжный сервис отклонил платёж. Попробуйте позже или выберите другой способ оплаты.",
			order_failed: "Не удалось создать платёж. Попробуйте ещё раз.",
			internal_error: "Что-то пошло не так на стороне магазина. Попробуйте позже.",
			network: "Нет связи с магазином. Проверьте интернет и попробуйте ещё раз."
		};
		// Errors that belong to one field of the checkout form.
		var FIELD_OF = { bad_email: "co-email", bad_phone: "co-phone" };

		function $(id) { return document.getElementById(id); }

		// The catalog as the page shows it: sku → {name, price in kopecks}.
		var products = {};
		Array.prototype.forEach.call(document.querySelectorAll(".product[data-sku]"), function (el) {
			var h = el.querySelector("h3");
			products[el.dataset.sku] = { name: h ? h.textContent : el.dataset.name, price: kopecks(el.dataset.price) };
		});

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

		function plural(n, one, few, many) {
			var d = n % 10, h = n % 100;
			if (d === 1 && h !== 11) { return one; }
			if (d >= 2 && d <= 4 && (h < 12 || h > 14)) { return few; }
			return many;
		}

		// ---- the cart, in localStorage ----

		function load() {
			var lines = [];
			try { lines = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]"); } catch (e) { lines = []; }
			if (!Array.isArray(lines)) { lines = []; }
			return lines.filter(function (l) {
				return l && products[l.sku] && Number.isInteger(l.qty) && l.qty >= 1;
			}).map(function (l) { return { sku: l.sku, qty: Math.min(l.qty, MAX_QTY) }; });
		}

		var cart = load();

		function save() {
			try { localStorage.setItem(STORAGE_KEY, JSON.stringify(cart)); } catch (e) { /* private mode: the cart lives in this page only */ }
			attemptKey = null;
			render();
		}

		function line(sku) {
			for (var i = 0; i < cart.length; i++) { if (cart[i].sku === sku) { return cart[i]; } }
			return null;
		}

		function add(sku, delta) {
			var l = line(sku);
			if (!l) {
				if (delta <= 0) { return; }
				l = { sku: sku, qty: 0 };
				cart.push(l);
			}
			l.qty = Math.max(0, Math.min(MAX_QTY, l.qty + delta));
			if (l.qty === 0) { cart.splice(cart.indexOf(l), 1); }
			save();
		}

		function remove(sku) {
			cart = cart.filter(function (l) { return l.sku !== sku; });
			save();
		}

		// ---- rendering ----

		// The phone's bottom bar leads to the cart; it hides while the cart is
		// on the screen.
		var cartInView = false;
		if ("IntersectionObserver" in window) {
			new IntersectionObserver(function (entries) {
				cartInView = entries[entries.length - 1].isIntersecting;
				render();
			}).observe($("cart"));
		}

		function render() {
			var count = 0, total = 0;
			var list = $("cart-lines");
			list.textContent = "";
			cart.forEach(function (l) {
				var p = products[l.sku];
				count += l.qty;
				total += p.price * l.qty;
				list.appendChild(renderLine(l, p));
			});
			var empty = cart.length === 0;
			$("cart-count").textContent = count;
			$("cart-empty").hidden = !empty;
			$("cart-total-row").hidden = empty;
			$("cart-total").textContent = rub(total);
			$("checkout").hidden = empty || !$("pay-to").hidden;
			$("checkout-submit").textContent = empty ? "Оплатить" : "Оплатить " + rub(total);
			var bar = $("cart-bar");
			bar.hidden = empty || cartInView;
			$("cart-bar-text").textContent = count + " " + plural(count, "товар", "товара", "товаров") + " · " + rub(total);
			Array.prototype.forEach.call(document.querySelectorAll("[data-in-cart]"), function (el) {
				var l = line(el.dataset.inCart);
				el.hidden = !l;
				el.textContent = l ? "✓ в корзине: " + l.qty : "";
			});
		}

		function renderLine(l, p) {
			var li = document.createElement("li");
			li.className = "cart-line";
			li.dataset.sku = l.sku;

			var name = document.createElement("span");
			name.className = "line-name";
			name.textContent = p.name;
			li.appendChild(name);

			var controls = document.createElement("div");
			controls.className = "line-controls";
			var stepper = document.createElement("span");
			stepper.className = "stepper";
			stepper.setAttribute("role", "group");
			stepper.setAttribute("aria-label", "Количество: " + p.name);
			stepper.appendChild(button("−", "Уменьшить количество: " + p.name, "dec", l.qty <= 1));
			var qty = document.createElement("span");
			qty.className = "qty";
			qty.textContent = l.qty;
			qty.setAttribute("aria-live", "polite");
			stepper.appendChild(qty);
			stepper.appendChild(button("+", "Увеличить количество: " + p.name, "inc", l.qty >= MAX_QTY));
			controls.appendChild(stepper);
			var rm = button("Удалить", "Удалить из корзины: " + p.name, "remove", false);
			rm.className = "remove";
			controls.appendChild(rm);
			li.appendChild(controls);

			var sum = document.createElement("span");
			sum.className = "line-sum";
			sum.textContent = rub(p.price * l.qty);
			li.appendChild(sum);
			return li;
		}

		function button(text, label, action, disabled) {
			var b = document.createElement("button");
			b.type = "button";
			b.textContent = text;
			b.setAttribute("aria-label", label);
			b.dataset.action = action;
			b.disabled = disabled;
			return b;
		}

		// ---- events ----

		document.addEventListener("click", function (e) {
			var t = e.target.closest("button");
			if (!t) { return; }
			if (t.dataset.add) {
				add(t.dataset.add, 1);
				t.classList.add("added");
				t.textContent = "Добавлено ✓";
				clearTimeout(t._timer);
				t._timer = setTimeout(function () { t.classList.remove("added"); t.textContent = "В корзину"; }, 1200);
				return;
			}
			var li = t.closest(".cart-line");
			if (!li) { return; }
			var sku = li.dataset.sku;
			if (t.dataset.action === "inc") { add(sku, 1); focusAfterRender(sku, "inc"); }
			if (t.dataset.action === "dec") { add(sku, -1); focusAfterRender(sku, "dec"); }
			if (t.dataset.action === "remove") { remove(sku); $("cart-title").focus(); }
		});

		// Keep the keyboard focus on a stepper button after the list is redrawn.
		function focusAfterRender(sku, action) {
			var b = document.querySelector('.cart-line[data-sku="' + sku + '"] [data-action="' + action + '"]');
			if (b && !b.disabled) { b.focus(); } else if (b) { b.parentNode.querySelector("button:not([disabled])").focus(); }
		}
		$("cart-title").tabIndex = -1;

		// Another tab changed the cart (or thanks.html emptied it).
		window.addEventListener("storage", function (e) {
			if (e.key === STORAGE_KEY || e.key === null) { cart = load(); attemptKey = null; render(); }
		});

		// ---- checkout ----

		var form = $("checkout");
		var submit = $("checkout-submit");
		var attemptKey = null; // Idempotency-Key of the attempt under way
		var busy = false;

		["co-email", "co-phone"].forEach(function (id) {
			$(id).addEventListener("input", function () { clearFieldError(id); attemptKey = null; });
		});
		form.addEventListener("change", function () { attemptKey = null; });

		form.addEventListener("submit", function (e) {
			e.preventDefault();
			if (busy) { return; }
			hideError();
			var email = $("co-email").value.trim();
			var phone = $("co-phone").value.trim();
			if (cart.length === 0) { showError("empty_cart"); return; }
			if (!email && !phone) {
				showError(null, "Укажите e-mail или телефон: на него придёт кассовый чек.", "co-email");
				return;
			}
			var body = { items: cart.map(function (l) { return { sku: l.sku, qty: l.qty }; }) };
			if (email) { body.email = email; }
			if (phone) { body.phone = phone; }
			var endpoint = form.querySelector("input[name=method]:checked").value;
			// One key per attempt: a repeat after a lost answer gets the same
			// order, never a second invoice.
			if (!attemptKey) { attemptKey = newKey(); }
			setBusy(true);
			fetch(endpoint, {
				method: "POST",
				headers: { "Content-Type": "application/json", "Accept": "application/json", "Idempotency-Key": attemptKey },
				body: JSON.stringify(body),
				credentials: "same-origin"
			}).then(function (r) {
				return r.text().then(function (text) {
					var data = null;
					try { data = JSON.parse(text); } catch (err) { data = null; }
					return { status: r.status, data: data };
				});
			}).then(function (res) {
				attemptKey = null; // the server answered: the next attempt is a new order
				var o = res.data;
				if (res.status >= 200 && res.status < 300 && o && o.order_id) {
					created(o);
					return;
				}
				setBusy(false);
				var code = o && o.error && o.error.code;
				if (!code) { code = res.status === 413 ? "body_too_large" : res.status === 503 ? "provider_unavailable" : "internal_error"; }
				showError(code, null, FIELD_OF[code]);
			}, function () {
				// No answer: keep the key, so that pressing again cannot pay twice.
				setBusy(false);
				showError("network");
			});
		});

		function created(o) {
			// thanks.html empties the cart once this order is paid.
			try { localStorage.setItem("kassa-demo-order", o.order_id); } catch (e) { /* no storage */ }
			if (o.payment_url) {
				submit.textContent = "Переходим к оплате…";
				location.assign(o.payment_url);
				return;
			}
			setBusy(false);
			if (o.pay_to) {
				// A Pegas-kassa wallet type: no payment page, a number to pay to.
				$("pay-to-amount").textContent = rub(kopecks(o.amount));
				$("pay-to-where").textContent = o.pay_to.card ? "на карту:" : "на кошелёк:";
				$("pay-to-number").textContent = o.pay_to.card || o.pay_to.wallet;
				$("pay-to-status").href = "/thanks.html?order=" + encodeURIComponent(o.order_id);
				$("pay-to").hidden = false;
				form.hidden = true;
				$("pay-to").scrollIntoView({ block: "nearest" });
				return;
			}
			location.assign("/thanks.html?order=" + encodeURIComponent(o.order_id));
		}

		function setBusy(on) {
			busy = on;
			submit.setAttribute("aria-busy", on ? "true" : "false");
			if (on) { submit.textContent = "Создаём заказ…"; } else { render(); }
		}

		function showError(code, text, field) {
			var box = $("checkout-error");
			box.textContent = "";
			var title = document.createElement("strong");
			title.textContent = "Заказ не оформлен";
			box.appendChild(title);
			box.appendChild(document.createTextNode(text || MESSAGES[code] || MESSAGES.internal_error));
			box.hidden = false;
			if (field) {
				var input = $(field);
				input.setAttribute("aria-invalid", "true");
				var msg = document.createElement("p");
				msg.className = "field-error";
				msg.id = field + "-error";
				msg.textContent = text || MESSAGES[code];
				input.parentNode.appendChild(msg);
				input.setAttribute("aria-describedby", msg.id + " co-contact-hint");
				input.focus();
			} else {
				box.focus();
			}
		}

		function hideError() {
			$("checkout-error").hidden = true;
			clearFieldError("co-email");
			clearFieldError("co-phone");
		}

		function clearFieldError(id) {
			var input = $(id);
			input.removeAttribute("aria-invalid");
			input.setAttribute("aria-describedby", "co-contact-hint");
			var msg = $(id + "-error");
			if (msg) { msg.remove(); }
		}

		function newKey() {
			if (window.crypto && crypto.randomUUID) { return "web-" + crypto.randomUUID(); }
			var a = new Uint8Array(16);
			crypto.getRandomValues(a);
			return "web-" + Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join("");
		}

		// Back from the payment page (the page may come from the back-forward
		// cache): the button must not stay busy.
		window.addEventListener("pageshow", function () { busy = false; submit.removeAttribute("aria-busy"); cart = load(); render(); });

		render();
	}
})();
