// The console's few behaviours, in one file: the Content-Security-Policy allows scripts only from
// this origin (no inline scripts or on* attributes), so templates mark elements with data attributes.
(function () {
  'use strict';

  // <select data-autosubmit>: submit its form when changed.
  document.querySelectorAll('select[data-autosubmit]').forEach(function (sel) {
    sel.addEventListener('change', function () { sel.form.submit(); });
  });

  // <button data-confirm="question">: ask before submitting.
  document.querySelectorAll('[data-confirm]').forEach(function (el) {
    el.addEventListener('click', function (ev) { if (!confirm(el.dataset.confirm)) ev.preventDefault(); });
  });

  // <a data-back>: back to the previous page.
  document.querySelectorAll('a[data-back]').forEach(function (a) {
    a.addEventListener('click', function (ev) { if (history.length > 1) { ev.preventDefault(); history.back(); } });
  });

  // The digest embedded as mailed: grow the frame to its content.
  document.querySelectorAll('iframe.embed-frame').forEach(function (f) {
    f.addEventListener('load', function () {
      try { f.style.height = (f.contentDocument.documentElement.scrollHeight + 20) + 'px'; } catch (e) {}
    });
  });

  // Reply form: a template picked fills the answer (asking before replacing written text).
  var pick = document.getElementById('tpl-pick'), box = document.getElementById('answer-text');
  if (pick && box) {
    pick.addEventListener('change', function () {
      var opt = pick.options[pick.selectedIndex];
      if (opt.dataset.text && (!box.value.trim() || confirm('用模板替换已写的内容？'))) box.value = opt.dataset.text;
    });
  }

  // <button data-print>: print the page (the report).
  document.querySelectorAll('[data-print]').forEach(function (el) {
    el.addEventListener('click', function () { window.print(); });
  });

  // On a phone, filters nobody has set fold away under 筛选与排序.
  if (window.matchMedia('(max-width: 760px)').matches) {
    document.querySelectorAll('details.more-filters').forEach(function (d) { if (!d.dataset.active) d.open = false; });
  }

  // The header's menu button (phones).
  var menu = document.querySelector('.menu-toggle'), top = document.querySelector('header.top');
  if (menu && top) {
    menu.addEventListener('click', function () {
      var open = top.classList.toggle('open');
      menu.setAttribute('aria-expanded', open ? 'true' : 'false');
    });
  }

  // Ticket list: "select all" and the bulk action's own fields (a reason for close, a person for assign).
  var all = document.getElementById('check-all');
  if (all) {
    all.addEventListener('change', function () {
      document.querySelectorAll('input[name=ids]').forEach(function (c) { c.checked = all.checked; });
    });
  }
  var bulk = document.getElementById('bulk-action');
  if (bulk) {
    var syncBulk = function () {
      document.querySelectorAll('#bulk [data-for]').forEach(function (l) {
        l.hidden = l.dataset.for.split(' ').indexOf(bulk.value) < 0;
      });
    };
    bulk.addEventListener('change', syncBulk); syncBulk();
  }

  // Reports: the name list shows only the names of the scope kind picked.
  var kind = document.getElementById('scope-kind'), name = document.getElementById('scope-name');
  if (kind && name) {
    var sync = function () {
      Array.prototype.forEach.call(name.options, function (o) { if (o.dataset.kind) o.hidden = o.dataset.kind !== kind.value; });
      if (name.selectedOptions[0] && name.selectedOptions[0].hidden) name.value = '';
      name.disabled = kind.value === 'all';
    };
    kind.addEventListener('change', sync); sync();
  }
})();
