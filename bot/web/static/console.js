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

  // <textarea data-count="max">: a live character counter in .counter[data-for=name].
  document.querySelectorAll('textarea[data-count]').forEach(function (ta) {
    var out = document.querySelector('.counter[data-for="' + ta.name + '"]');
    var max = parseInt(ta.dataset.count, 10);
    if (!out) return;
    function update() { var n = ta.value.length; out.textContent = n + ' / ' + max + ' 字'; out.className = 'counter ' + (n > max ? 'red' : 'muted'); }
    ta.addEventListener('input', update); update();
  });

  // Reply form: a template picked fills the answer (asking before replacing written text).
  var pick = document.getElementById('tpl-pick'), box = document.getElementById('answer-text');
  if (pick && box) {
    pick.addEventListener('change', function () {
      var opt = pick.options[pick.selectedIndex];
      if (opt.dataset.text && (!box.value.trim() || confirm('用模板替换已写的内容？'))) box.value = opt.dataset.text;
    });
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
