/* Posts (稿件): the rich-text editor, the live phone preview, the Weibo count and check results pinned to the preview. */
(function () {
  "use strict";

  var URL_RE = /https?:\/\/[\x21-\x7e]+/g;
  var URL_LENGTH = 10;

  // Mirror of bot/publishing/weibo_length.py (Weibo's own counter): bytes halved; ASCII 1 byte, other
  // UTF-16 code units 2; a link 20 bytes up to 140 (the excess added beyond); short weibo.com links
  // their own length; t.cn links as plain text.
  var WB_URL = /https?:\/\/[a-zA-Z0-9]+(?:\.[a-zA-Z0-9]+)+[-A-Z0-9a-z_$.+!*()\/\\,:@&=?~#%]*/g;
  function wbBytes(s) {
    var n = 0;
    for (var i = 0; i < s.length; i++) { n += s.charCodeAt(i) < 128 ? 1 : 2; }
    return n;
  }
  function wbUrlBytes(url) {
    var own = wbBytes(url);
    if (/^https?:\/\/(?:weibo\.com|weibo\.cn)/i.test(url) && own <= 41) { return own; }
    return own <= 140 ? 20 : own - 140 + 20;
  }
  function weiboLength(text) {
    var total = 0, rest = "", last = 0, m;
    WB_URL.lastIndex = 0;
    while ((m = WB_URL.exec(text)) !== null) {
      if (/^https?:\/\/t\.cn/i.test(m[0])) { continue; }
      total += wbUrlBytes(m[0]);
      rest += text.slice(last, m.index);
      last = m.index + m[0].length;
    }
    rest += text.slice(last);
    return Math.ceil((total + wbBytes(rest)) / 2);
  }
  window.weiboLength = weiboLength;

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function escapeHtml(s) {
    return s.replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; });
  }

  // Weibo shows links as "网页链接".
  function weiboHtml(text) {
    return escapeHtml(text).replace(/https?:\/\/[\x21-\x7e]+/g, '<span class="wb-link">网页链接</span>');
  }

  function setupCounter() {
    var ta = document.querySelector("textarea[name=weibo_text]");
    var out = document.querySelector(".wb-count");
    if (!ta || !out) { return; }
    var max = parseInt(ta.dataset.max || "140", 10);
    function update() {
      var n = Math.ceil(weiboLength(ta.value));
      out.textContent = "按微博规则计 " + n + " / " + max + " 字（英文和数字算半个字，每个链接算 " + URL_LENGTH + " 个字）";
      out.className = "wb-count " + (n > max ? "red" : "muted");
      document.querySelectorAll("[data-live=weibo_text]").forEach(function (el) { el.innerHTML = weiboHtml(ta.value) || "（未填写微博文案）"; });
    }
    ta.addEventListener("input", function () { update(); scheduleCheck(); });
    update();
  }

  function live(name, value) {
    document.querySelectorAll("[data-live=" + name + "]").forEach(function (el) { el.textContent = value; });
  }

  function setupEditor() {
    var holder = document.getElementById("editor");
    if (!holder || !window.Quill) { return; }
    // Inline styles instead of Quill's classes: WeChat keeps styles, it has no Quill stylesheet.
    ["attributors/style/align", "attributors/style/color", "attributors/style/background", "attributors/style/size"]
      .forEach(function (name) { window.Quill.register(window.Quill.import(name), true); });
    var Size = window.Quill.import("attributors/style/size");
    Size.whitelist = ["14px", "18px", "20px", "24px"];
    window.Quill.register(Size, true);
    var hidden = document.querySelector("input[name=body]");
    var quill = new window.Quill(holder, {
      theme: "snow",
      placeholder: "在此输入或粘贴正文（可从 Word、WPS、秀米、135编辑器粘贴）……",
      modules: {
        toolbar: {
          container: [
            [{header: [false, 2, 3]}], [{size: ["14px", false, "18px", "20px", "24px"]}],
            ["bold", "italic", "underline"], [{color: []}, {background: []}],
            [{align: []}], [{list: "ordered"}, {list: "bullet"}], ["blockquote", "image"], ["clean"]
          ],
          handlers: {image: function () { pickImage(quill); }}
        }
      }
    });
    quill.clipboard.dangerouslyPasteHTML(hidden.value || "");
    function sync() {
      var html = quill.getText().trim() || quill.root.querySelector("img") ? quill.getSemanticHTML() : "";
      hidden.value = html;
      document.querySelectorAll("[data-live=body]").forEach(function (el) { el.innerHTML = html || '<p class="muted">（正文为空）</p>'; });
      scheduleCheck();
    }
    quill.on("text-change", sync);
    sync();
    holder.closest("form").addEventListener("submit", sync);
    window.govbotEditor = quill;
  }

  function pickImage(quill) {
    var input = document.createElement("input");
    input.type = "file";
    input.accept = "image/jpeg,image/png,image/gif";
    input.addEventListener("change", function () {
      if (!input.files.length) { return; }
      uploadImage(input.files[0]).then(function (url) {
        var range = quill.getSelection(true);
        quill.insertEmbed(range ? range.index : quill.getLength(), "image", url, "user");
      }).catch(function (err) { alert(err.message); });
    });
    input.click();
  }

  function uploadImage(file) {
    var data = new FormData();
    data.append("image", file);
    data.append("csrf_token", csrf());
    return fetch("/posts/media", {method: "POST", body: data, headers: {"X-CSRF-Token": csrf()}, credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) { throw new Error(j.detail || "图片上传失败"); } return j.url; }); });
  }

  function setupLiveFields() {
    ["title", "digest", "byline"].forEach(function (name) {
      var input = document.querySelector("[name=" + name + "]");
      if (!input) { return; }
      var update = function () { live(name, input.value || (name === "title" ? "（无标题）" : "")); scheduleCheck(); };
      input.addEventListener("input", update);
      update();
    });
    var cover = document.querySelector("input[name=cover]");
    if (cover) {
      cover.addEventListener("change", function () {
        if (!cover.files.length) { return; }
        var name = cover.closest(".file-pick").querySelector(".file-name");
        if (name) { name.textContent = cover.files[0].name; }
        var url = URL.createObjectURL(cover.files[0]);
        document.querySelectorAll("[data-live=cover]").forEach(function (img) { img.src = url; img.hidden = false; });
      });
    }
  }

  // Check results pinned to the spot: the quoted words are marked in the preview, numbered like the list.
  function pinProblems() {
    var data = document.getElementById("problems-data");
    if (data) { applyPins(JSON.parse(data.dataset.problems)); }
  }

  function clearPins() {
    document.querySelectorAll(".preview .pin").forEach(function (pin) { pin.remove(); });
    document.querySelectorAll(".preview mark.problem").forEach(function (mark) {
      mark.replaceWith(document.createTextNode(mark.textContent));
    });
  }

  function applyPins(problems) {
    clearPins();
    problems.forEach(function (p, i) {
      var n = i + 1;
      var area = document.querySelector(".preview [data-field=" + (p.field || "post") + "]");
      if (!area) { area = document.querySelector(".preview [data-field=post]"); }
      if (!area) { return; }
      // The words at fault are the first quoted part of the check's message (the snippet is their context).
      var quoted = /“(.+?)”/.exec(p.text || "");
      if (quoted && markText(area, quoted[1], n, p.message)) { return; }
      var pin = document.createElement("span");
      pin.className = "pin";
      pin.textContent = n;
      pin.title = p.message;
      area.insertBefore(pin, area.firstChild);
    });
  }

  // While editing: the checks run on what is typed (after a pause) and their results are pinned live.
  var checkTimer = null;
  function scheduleCheck() {
    var form = document.querySelector("form[data-live-check]");
    var list = document.getElementById("live-problems");
    if (!form || !list) { return; }
    clearTimeout(checkTimer);
    checkTimer = setTimeout(function () {
      var data = new FormData();
      ["title", "body", "digest", "weibo_text", "byline"].forEach(function (name) {
        var field = form.querySelector("[name=" + name + "]");
        data.append(name, field ? field.value : "");
      });
      data.append("post_id", form.dataset.postId || "");
      data.append("csrf_token", csrf());
      fetch("/posts/check", {method: "POST", body: data, headers: {"X-CSRF-Token": csrf()}, credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (j) {
          if (!j) { return; }
          list.innerHTML = "";
          j.problems.forEach(function (p) {
            var li = document.createElement("li");
            li.textContent = (p.place ? p.place + "：" : "") + p.message + (p.snippet ? "（“" + p.snippet + "”）" : "");
            list.appendChild(li);
          });
          var ok = document.getElementById("live-ok");
          if (ok) { ok.hidden = j.problems.length > 0; }
          applyPins(j.problems);
        });
    }, 700);
  }

  function markText(root, snippet, n, message) {
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    var node;
    while ((node = walker.nextNode())) {
      var at = node.data.indexOf(snippet);
      if (at < 0) { continue; }
      var range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + snippet.length);
      var mark = document.createElement("mark");
      mark.className = "problem";
      mark.title = message;
      range.surroundContents(mark);
      var pin = document.createElement("span");
      pin.className = "pin";
      pin.textContent = n;
      mark.appendChild(pin);
      return true;
    }
    return false;
  }

  function setupChoices() {
    // A time input is enabled only when its choice is picked; nothing publishes at once by default.
    document.querySelectorAll("[data-when]").forEach(function (form) {
      var radios = form.querySelectorAll("input[name=when]");
      var at = form.querySelector("input[name=at]");
      function update() {
        var picked = form.querySelector("input[name=when]:checked");
        if (at) { at.disabled = !picked || picked.value !== "at"; at.required = !at.disabled; }
      }
      radios.forEach(function (r) { r.addEventListener("change", update); });
      update();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupEditor();
    setupCounter();
    setupLiveFields();
    pinProblems();
    setupChoices();
  });
})();
