/*
 * app.js: the small behaviours of the pages that HTML alone does not give.
 *
 *  - notices: dismiss, fade out the good ones, show errors htmx would otherwise drop;
 *  - panels: close the inline New forms, remove custom variable rows, fill a file
 *    variable's name from the file picked for it;
 *  - tabs: the stdout/stderr tabs of a task, with the arrow keys;
 *  - times: keep "3 min ago" true without asking the server (a timer, no request);
 *  - start at login: in the desktop window, read and change it through the app's command;
 *  - logs: show the tail the page came with, follow the rest live over the log's SSE
 *    stream (resuming after the last line shown), load earlier parts on demand, and keep
 *    scrolling to the newest line until the person scrolls up.
 *
 * Everything here works the same in a browser and in the desktop window.
 */
(function () {
  'use strict';

  var TERMINAL_STATES = ['SUCCESS', 'ERROR', 'STOPPED', 'TIMEDOUT'];
  var EARLIER_CHUNK_BYTES = 256 * 1024;
  // How much of a followed log the page keeps; the download link has all of it.
  var MAX_SHOWN_CHARS = 4 * 1024 * 1024;
  // The most text one animation frame adds to a followed log.
  var MAX_FRAME_CHARS = 256 * 1024;
  var RETRY_FIRST_MS = 1000;
  var RETRY_MAX_MS = 30000;

  // ---- notices ---------------------------------------------------------------------------

  function showFlash(message, isError) {
    var area = document.getElementById('flash');
    if (!area) {
      return;
    }
    var flash = document.createElement('div');
    flash.className = 'flash ' + (isError ? 'flash-error' : 'flash-success');
    flash.setAttribute('role', isError ? 'alert' : 'status');
    var icon = document.createElement('span');
    icon.className = 'flash-icon';
    icon.setAttribute('aria-hidden', 'true');
    icon.textContent = isError ? '!' : '✓';
    var text = document.createElement('span');
    text.className = 'flash-text';
    text.textContent = message;
    var close = document.createElement('button');
    close.type = 'button';
    close.className = 'flash-close';
    close.setAttribute('data-dismiss', '');
    close.setAttribute('aria-label', 'Dismiss');
    close.textContent = '×';
    flash.append(icon, text, close);
    area.replaceChildren(flash);
    armFlash(flash);
  }

  function armFlash(flash) {
    if (flash.classList.contains('flash-success') && !flash.dataset.armed) {
      flash.dataset.armed = 'true';
      setTimeout(function () {
        flash.classList.add('leaving');
        setTimeout(function () {
          flash.remove();
        }, 300);
      }, 6000);
    }
  }

  document.addEventListener('htmx:afterSettle', function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === 'flash') {
      target.querySelectorAll('.flash').forEach(armFlash);
    }
    initialise(target || document);
  });

  document.addEventListener('htmx:beforeSwap', function (event) {
    var xhr = event.detail.xhr;
    var type = (xhr && xhr.getResponseHeader('Content-Type')) || '';
    if (type.indexOf('application/json') === 0) {
      // A guard or API error in JSON: say it, rather than swapping JSON into the page.
      event.detail.shouldSwap = false;
      var message = 'The request failed (' + xhr.status + ').';
      try {
        message = JSON.parse(xhr.responseText).error || message;
      } catch (error) {
        // Keep the generic message.
      }
      showFlash(message, true);
    }
  });

  document.addEventListener('htmx:sendError', function () {
    showFlash('Blanket is not answering. Is it still running? The page catches up once it is back.', true);
  });

  // ---- panels, rows and files ------------------------------------------------------------

  document.addEventListener('click', function (event) {
    var element = event.target instanceof Element ? event.target : null;
    if (!element) {
      return;
    }
    var dismiss = element.closest('[data-dismiss]');
    if (dismiss) {
      var flash = dismiss.closest('.flash');
      if (flash) {
        flash.remove();
      }
      return;
    }
    var closer = element.closest('[data-close-panel]');
    if (closer) {
      closePanel(closer.closest('.panel-slot'));
      return;
    }
    var remover = element.closest('[data-remove-row]');
    if (remover) {
      var row = remover.closest('.custom-row');
      var rows = row && row.parentElement;
      if (row) {
        row.remove();
      }
      var next = rows && rows.querySelector('input');
      if (next) {
        next.focus();
      }
    }
  });

  function closePanel(slot) {
    if (!slot) {
      return;
    }
    if (slot.hasAttribute('data-standalone')) {
      window.location.href = slot.closest('main').querySelector('.crumbs a').href;
      return;
    }
    slot.replaceChildren();
    var opener = document.querySelector('[aria-controls="' + slot.id + '"]');
    if (opener) {
      opener.focus();
    }
  }

  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape') {
      var slot = event.target instanceof Element && event.target.closest('.panel-slot:not([data-standalone])');
      if (slot && slot.firstElementChild) {
        closePanel(slot);
      }
    }
  });

  document.addEventListener('htmx:afterSwap', function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.classList.contains('panel-slot')) {
      var first = target.querySelector('select, input:not([type=hidden]), a.button');
      if (first) {
        first.focus();
      }
    }
  });

  // Choosing a type loads its variables. A listener on the document, rather than htmx
  // attributes on the select, also catches a choice made the instant the form appeared.
  document.addEventListener('change', function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.hasAttribute('data-type-select') && window.htmx) {
      window.htmx.ajax('GET', '/ui/partials/task-type-env?type=' + encodeURIComponent(select.value), {
        target: '#task-type-env',
        swap: 'innerHTML',
      });
    }
  });

  document.addEventListener('change', function (event) {
    var input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== 'file' || !input.name.startsWith('file.')) {
      return;
    }
    var variable = input.name.slice(5);
    var text = input.form && input.form.elements.namedItem('env.' + variable);
    if (text && input.files && input.files.length > 0 && (!text.value || text.dataset.fromFile === 'true')) {
      text.value = input.files[0].name;
      text.dataset.fromFile = 'true';
    }
  });

  // ---- tabs --------------------------------------------------------------------------------

  function initialiseTabs(scope) {
    scope.querySelectorAll('[role=tablist]:not([data-ready])').forEach(function (list) {
      list.dataset.ready = 'true';
      var tabs = Array.from(list.querySelectorAll('[role=tab]'));
      function select(tab, focus) {
        tabs.forEach(function (other) {
          var selected = other === tab;
          other.setAttribute('aria-selected', selected ? 'true' : 'false');
          other.tabIndex = selected ? 0 : -1;
          var panel = document.getElementById(other.getAttribute('aria-controls'));
          if (panel) {
            panel.hidden = !selected;
            if (selected) {
              panel.querySelectorAll('[data-log]').forEach(function (log) {
                if (log.blanketLog) {
                  log.blanketLog.show();
                }
              });
            }
          }
        });
        if (focus) {
          tab.focus();
        }
      }
      tabs.forEach(function (tab, index) {
        tab.addEventListener('click', function () {
          select(tab, false);
        });
        tab.addEventListener('keydown', function (event) {
          var next = null;
          if (event.key === 'ArrowRight') {
            next = tabs[(index + 1) % tabs.length];
          } else if (event.key === 'ArrowLeft') {
            next = tabs[(index - 1 + tabs.length) % tabs.length];
          } else if (event.key === 'Home') {
            next = tabs[0];
          } else if (event.key === 'End') {
            next = tabs[tabs.length - 1];
          }
          if (next) {
            event.preventDefault();
            select(next, true);
          }
        });
      });
      var current = tabs.find(function (tab) {
        return tab.getAttribute('aria-selected') === 'true';
      }) || tabs[0];
      if (current) {
        select(current, false);
      }
    });
  }

  // ---- times -------------------------------------------------------------------------------

  // `seconds` is the age of the moment `then` (ms since the epoch, for the date of old ones).
  function relativeTime(seconds, then) {
    if (seconds < 0) {
      return 'in ' + shortDuration(-seconds);
    }
    if (seconds < 5) {
      return 'just now';
    }
    if (seconds < 60) {
      return seconds + ' s ago';
    }
    if (seconds < 3600) {
      return Math.floor(seconds / 60) + ' min ago';
    }
    if (seconds < 86400) {
      return Math.floor(seconds / 3600) + ' h ago';
    }
    if (seconds < 30 * 86400) {
      var days = Math.floor(seconds / 86400);
      return days === 1 ? 'yesterday' : days + ' days ago';
    }
    return new Date(then).toISOString().slice(0, 10);
  }

  function shortDuration(seconds) {
    if (seconds < 60) {
      return seconds + ' s';
    }
    if (seconds < 3600) {
      return Math.floor(seconds / 60) + ' min';
    }
    return Math.floor(seconds / 3600) + ' h';
  }

  // A time's age is the server's (data-age, measured when it rendered the time) plus the time
  // passed here since the page first saw it: the browser's clock may be off from the server's
  // by any amount, but it measures a span well.
  function refreshTimes(scope) {
    var now = Date.now();
    scope.querySelectorAll('time[data-relative]').forEach(function (time) {
      var then = Date.parse(time.getAttribute('datetime'));
      var age = Number(time.dataset.age);
      if (isNaN(then) || isNaN(age)) {
        return;
      }
      if (!time.dataset.seen) {
        time.dataset.seen = String(now);
      }
      var text = relativeTime(age + Math.floor((now - Number(time.dataset.seen)) / 1000), then);
      if (time.textContent !== text) {
        time.textContent = text;
      }
      if (!time.dataset.local) {
        time.dataset.local = 'true';
        time.title = new Date(then).toLocaleString() + ' (' + time.title + ')';
      }
    });
  }

  // Seconds until a time of this age reads differently (seconds-old times move in 15 s steps).
  function untilNextLabel(seconds) {
    if (seconds < 5) {
      return 5 - seconds;
    }
    if (seconds < 60) {
      return 15;
    }
    if (seconds < 3600) {
      return 60 - (seconds % 60);
    }
    if (seconds < 86400) {
      return 3600 - (seconds % 3600);
    }
    return 86400 - (seconds % 86400);
  }

  // One timer, set for the moment the youngest time on the page changes its label, and none
  // while the page is hidden or shows no relative time, so an idle window never wakes.
  var timesTimer = 0;
  function scheduleTimes() {
    clearTimeout(timesTimer);
    timesTimer = 0;
    if (document.hidden) {
      return;
    }
    var now = Date.now();
    var soonest = Infinity;
    document.querySelectorAll('time[data-relative]').forEach(function (time) {
      var age = Number(time.dataset.age) + Math.floor((now - Number(time.dataset.seen)) / 1000);
      if (!isNaN(age) && age >= 0) {
        soonest = Math.min(soonest, untilNextLabel(age));
      }
    });
    if (soonest !== Infinity) {
      timesTimer = setTimeout(function () {
        refreshTimes(document);
        scheduleTimes();
      }, soonest * 1000);
    }
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) {
      refreshTimes(document);
    }
    scheduleTimes();
  });

  // ---- logs --------------------------------------------------------------------------------

  function LogViewer(root) {
    this.root = root;
    this.output = root.querySelector('[data-log-output]');
    this.earlier = root.querySelector('[data-log-earlier]');
    this.jump = root.querySelector('[data-log-jump]');
    this.state = root.querySelector('[data-log-state]');
    this.followUrl = root.dataset.follow;
    this.statusUrl = root.dataset.status;
    this.download = root.dataset.download;
    this.lastId = Number(root.dataset.lines) || 0;
    this.start = Number(root.dataset.start) || 0;
    this.live = root.dataset.live === 'true';
    this.pending = '';
    this.frame = 0;
    this.shownChars = this.output.textContent.length;
    this.trimmed = false;
    this.controller = null;
    this.following = false;
    this.ended = !this.live;
    this.shown = false;
    this.retryDelay = RETRY_FIRST_MS;
    this.retryTimer = 0;
    var viewer = this;
    this.output.addEventListener('scroll', function () {
      if (viewer.atBottom()) {
        viewer.jump.hidden = true;
      }
    });
    this.jump.addEventListener('click', function () {
      viewer.scrollToEnd();
      viewer.output.focus();
    });
    this.earlier.addEventListener('click', function () {
      viewer.loadEarlier();
    });
  }

  LogViewer.prototype.atBottom = function () {
    var output = this.output;
    return output.scrollHeight - output.scrollTop - output.clientHeight <= 24;
  };

  LogViewer.prototype.scrollToEnd = function () {
    this.output.scrollTop = this.output.scrollHeight;
    this.jump.hidden = true;
  };

  /** The log became visible: put its end in view and start following it. */
  LogViewer.prototype.show = function () {
    if (!this.shown) {
      this.shown = true;
      this.scrollToEnd();
    }
    if (!this.ended && !this.following) {
      this.follow();
    }
  };

  LogViewer.prototype.setState = function (text) {
    if (this.state) {
      this.state.textContent = text;
    }
  };

  LogViewer.prototype.follow = function () {
    var viewer = this;
    clearTimeout(this.retryTimer);
    this.following = true;
    this.setState('Following');
    this.controller = new AbortController();
    var headers = { Accept: 'text/event-stream' };
    if (this.lastId > 0) {
      headers['Last-Event-ID'] = String(this.lastId);
    }
    fetch(this.followUrl, { headers: headers, signal: this.controller.signal, cache: 'no-store' })
      .then(function (response) {
        if (!response.ok || !response.body) {
          throw new Error('the log stream answered ' + response.status);
        }
        viewer.retryDelay = RETRY_FIRST_MS;
        return viewer.read(response.body.getReader());
      })
      .then(function () {
        viewer.streamEnded();
      })
      .catch(function (error) {
        if (error && error.name === 'AbortError') {
          return;
        }
        viewer.streamEnded();
      });
  };

  LogViewer.prototype.read = function (reader) {
    var viewer = this;
    var decoder = new TextDecoder();
    var buffer = '';
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        // One pass over the buffer: slicing it after every event would copy it again each time.
        var from = 0;
        var boundary;
        while ((boundary = buffer.indexOf('\n\n', from)) >= 0) {
          viewer.handleEvent(buffer.slice(from, boundary));
          from = boundary + 2;
        }
        buffer = buffer.slice(from);
        return pump();
      });
    }
    return pump();
  };

  LogViewer.prototype.handleEvent = function (block) {
    var name = 'message';
    var data = [];
    var id = null;
    block.split('\n').forEach(function (line) {
      if (line === '' || line.charAt(0) === ':') {
        return;
      }
      var colon = line.indexOf(':');
      var field = colon < 0 ? line : line.slice(0, colon);
      var value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.charAt(0) === ' ') {
        value = value.slice(1);
      }
      if (field === 'data') {
        data.push(value);
      } else if (field === 'event') {
        name = value;
      } else if (field === 'id') {
        id = value;
      }
    });
    if (id !== null && /^\d+$/.test(id)) {
      this.lastId = Number(id);
    }
    if (name === 'message' && data.length > 0) {
      this.append(data.join('\n'));
    }
  };

  LogViewer.prototype.append = function (text) {
    this.pending += text;
    if (!this.frame) {
      var viewer = this;
      this.frame = requestAnimationFrame(function () {
        viewer.frame = 0;
        viewer.flush();
      });
    }
  };

  LogViewer.prototype.flush = function () {
    if (!this.pending) {
      return;
    }
    if (this.pending.length > MAX_FRAME_CHARS) {
      // More arrived in one frame than anyone can read: show its end, say what was skipped.
      var cut = this.pending.indexOf('\n', this.pending.length - MAX_FRAME_CHARS);
      var skipped = this.pending.slice(0, cut + 1).split('\n').length - 1;
      this.pending = '… ' + skipped.toLocaleString() + ' lines skipped while following (the full log has them) …\n' +
        this.pending.slice(cut + 1);
    }
    var stick = this.atBottom();
    // Each batch is a block of its own, so the browser lays out only the new lines rather
    // than the whole log again: following a huge log stays as cheap as a small one.
    var chunk = document.createElement('span');
    chunk.className = 'log-chunk';
    chunk.textContent = this.pending;
    this.output.appendChild(chunk);
    this.shownChars += this.pending.length;
    this.pending = '';
    if (stick) {
      this.trim();
      this.scrollToEnd();
    } else {
      this.jump.hidden = false;
    }
  };

  /** Keeps a followed log within MAX_SHOWN_CHARS by letting go of its oldest part. */
  LogViewer.prototype.trim = function () {
    if (this.shownChars <= MAX_SHOWN_CHARS) {
      return;
    }
    var output = this.output;
    while (this.shownChars > MAX_SHOWN_CHARS * 0.75 && output.firstChild && output.firstChild !== output.lastChild) {
      this.shownChars -= output.firstChild.textContent.length;
      output.removeChild(output.firstChild);
    }
    if (!this.trimmed) {
      this.trimmed = true;
      this.earlier.hidden = true;
      var note = this.root.querySelector('[data-log-trimmed]');
      if (note) {
        note.hidden = false;
      }
    }
  };

  /** The stream ended: the task (or worker) finished, or the server went away. */
  LogViewer.prototype.streamEnded = function () {
    var viewer = this;
    this.following = false;
    this.controller = null;
    if (!this.statusUrl) {
      this.finish();
      return;
    }
    fetch(this.statusUrl, { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (response) {
        if (response.status === 404) {
          return { gone: true };
        }
        if (!response.ok) {
          throw new Error('status ' + response.status);
        }
        return response.json();
      })
      .then(function (record) {
        var over = record.gone ||
          TERMINAL_STATES.indexOf(record.state) >= 0 ||
          record.status === 'stopped';
        if (over) {
          viewer.finish();
        } else {
          viewer.retryLater();
        }
      })
      .catch(function () {
        viewer.retryLater();
      });
  };

  LogViewer.prototype.retryLater = function () {
    var viewer = this;
    this.setState('Reconnecting…');
    this.retryTimer = setTimeout(function () {
      viewer.follow();
    }, this.retryDelay);
    this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
  };

  LogViewer.prototype.finish = function () {
    this.ended = true;
    this.flush();
    this.setState('Ended');
    this.root.dataset.ended = 'true';
  };

  LogViewer.prototype.suspend = function () {
    clearTimeout(this.retryTimer);
    if (this.controller) {
      this.controller.abort();
      this.controller = null;
    }
    this.following = false;
  };

  LogViewer.prototype.resume = function () {
    if (!this.ended && this.shown && !this.following) {
      this.follow();
    }
  };

  LogViewer.prototype.loadEarlier = function () {
    var viewer = this;
    if (this.start <= 0 || this.loading || this.trimmed) {
      return;
    }
    this.loading = true;
    this.earlier.disabled = true;
    var from = Math.max(0, this.start - EARLIER_CHUNK_BYTES);
    var end = this.start;
    fetch(this.download, { headers: { Range: 'bytes=' + from + '-' + (end - 1) }, cache: 'no-store' })
      .then(function (response) {
        if (response.status !== 206 && response.status !== 200) {
          throw new Error('the log answered ' + response.status);
        }
        return response.arrayBuffer().then(function (buffer) {
          var bytes = new Uint8Array(buffer);
          if (response.status === 200) {
            bytes = bytes.subarray(from, end);
          }
          return bytes;
        });
      })
      .then(function (bytes) {
        var cut = 0;
        if (from > 0) {
          var newline = bytes.indexOf(10);
          cut = newline >= 0 && newline + 1 < bytes.length ? newline + 1 : 0;
        }
        var text = new TextDecoder().decode(bytes.subarray(cut));
        var output = viewer.output;
        var height = output.scrollHeight;
        var top = output.scrollTop;
        var chunk = document.createElement('span');
        chunk.className = 'log-chunk';
        chunk.textContent = text;
        output.insertBefore(chunk, output.firstChild);
        viewer.shownChars += text.length;
        output.scrollTop = top + (output.scrollHeight - height);
        viewer.start = from + cut;
        viewer.earlier.hidden = viewer.start <= 0;
      })
      .catch(function (error) {
        showFlash('Earlier lines could not be loaded: ' + error.message, true);
      })
      .finally(function () {
        viewer.loading = false;
        viewer.earlier.disabled = false;
      });
  };

  var viewers = [];

  function initialiseLogs(scope) {
    scope.querySelectorAll('[data-log]').forEach(function (root) {
      if (root.blanketLog) {
        return;
      }
      var viewer = new LogViewer(root);
      root.blanketLog = viewer;
      viewers.push(viewer);
      var panel = root.closest('[role=tabpanel]');
      if (!panel || !panel.hidden) {
        viewer.show();
      }
    });
  }

  window.addEventListener('pagehide', function () {
    viewers.forEach(function (viewer) {
      viewer.suspend();
    });
  });
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) {
      viewers.forEach(function (viewer) {
        viewer.resume();
      });
      refreshTimes(document);
    }
  });

  // ---- start at login (desktop window only) ------------------------------------------------

  // The box reflects what the app reads back from the system (its autostart entry), so it
  // shows the truth even when the entry was added or removed outside Blanket.
  function initialiseAutostart() {
    var box = document.getElementById('autostart');
    var tauri = window.__TAURI__ && window.__TAURI__.core;
    if (!box || !tauri) {
      return;
    }
    var hint = document.getElementById('autostart-hint');
    function show(enabled) {
      box.checked = enabled;
      box.disabled = false;
      if (hint && hint.dataset.desktopHint) {
        hint.textContent = hint.dataset.desktopHint;
      }
    }
    tauri.invoke('autostart_enabled').then(show, function (error) {
      showFlash('Cannot read the start-at-login setting: ' + (error.message || error), true);
    });
    box.addEventListener('change', function () {
      var wanted = box.checked;
      box.disabled = true;
      tauri.invoke('set_autostart', { enabled: wanted }).then(function (enabled) {
        show(enabled);
        showFlash(enabled ? 'Blanket will start when you log in.' : 'Blanket will not start at login.', false);
      }, function (error) {
        show(!wanted);
        showFlash('Could not change start at login: ' + (error.message || error), true);
      });
    });
  }

  // ---- start -------------------------------------------------------------------------------

  function initialise(scope) {
    if (!(scope instanceof Element || scope instanceof Document)) {
      return;
    }
    initialiseTabs(scope);
    initialiseLogs(scope);
    refreshTimes(scope);
    scheduleTimes();
  }

  initialise(document);
  initialiseAutostart();
  document.querySelectorAll('#flash .flash').forEach(armFlash);
})();
