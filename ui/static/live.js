/*
 * live.js: where the pages' live-update nudges come from, hidden from the templates.
 *
 * The pages say `sse-connect="/ui/sse/tasks"` on a table and `hx-trigger="sse:tasks-changed"`
 * on its body, and htmx's SSE extension wires the two together. The extension asks
 * `htmx.createEventSource(url)` for its event source; this file answers with a LiveSource:
 *
 *  - in a browser, a LiveSource owns exactly one EventSource per `sse-connect`, reconnects it
 *    after the server restarts (the extension never sees it closed, so never opens a second
 *    one), closes it when the page is hidden (`pagehide`), and opens it again when the page
 *    comes back from the back/forward cache (`pageshow`);
 *  - in the desktop window (`window.__TAURI__` present) it opens no EventSource at all and
 *    re-dispatches the Tauri events of the same names (`tasks-changed`, `workers-changed`).
 *
 * Either way the extension receives the same events and htmx refreshes the same partials.
 * Like the server's stream, a LiveSource announces each name once when it starts listening,
 * so a change made between the page's render and the subscription is never missed.
 */
(function () {
  'use strict';

  var root = document.documentElement;
  root.classList.remove('no-js');
  root.classList.add('js');

  var tauriEvents = window.__TAURI__ && window.__TAURI__.event;
  var RETRY_FIRST_MS = 1000;
  var RETRY_MAX_MS = 30000;
  var sources = new Set();

  function updateStatus() {
    var status = document.getElementById('live-status');
    if (!status) {
      return;
    }
    if (sources.size === 0) {
      status.dataset.state = '';
      status.textContent = '';
      return;
    }
    var allOpen = true;
    sources.forEach(function (source) {
      if (source.readyState !== 1) {
        allOpen = false;
      }
    });
    var state = allOpen ? 'live' : 'connecting';
    if (status.dataset.state !== state) {
      status.dataset.state = state;
      status.textContent = allOpen ? 'Live' : 'Reconnecting…';
      status.title = allOpen
        ? 'Changes appear here as they happen'
        : 'Waiting for the Blanket server; the page catches up once it answers';
    }
  }

  class LiveSource extends EventTarget {
    constructor(url) {
      super();
      this.url = url;
      this.names = new Set();
      this.readyState = 0;
      this.onopen = null;
      this.onerror = null;
      this.onmessage = null;
      this.closed = false;
      this.source = null;
      this.retryDelay = RETRY_FIRST_MS;
      this.retryTimer = 0;
      this.unlisteners = [];
      this.forward = (event) => {
        this.dispatchEvent(new MessageEvent(event.type, {
          data: event.data,
          lastEventId: event.lastEventId,
        }));
      };
      sources.add(this);
      if (tauriEvents) {
        // Tauri events need no connection: the source is open from the start.
        this.readyState = 1;
        queueMicrotask(() => this.opened(new Event('open')));
      } else {
        this.connect();
      }
      updateStatus();
    }

    addEventListener(name, listener, options) {
      super.addEventListener(name, listener, options);
      if (this.names.has(name)) {
        return;
      }
      this.names.add(name);
      if (tauriEvents) {
        this.listenTauri(name);
      } else if (this.source) {
        this.source.addEventListener(name, this.forward);
      }
    }

    connect() {
      if (this.closed || this.source) {
        return;
      }
      var source = new EventSource(this.url);
      this.source = source;
      this.names.forEach((name) => source.addEventListener(name, this.forward));
      source.onopen = (event) => {
        this.retryDelay = RETRY_FIRST_MS;
        this.opened(event);
      };
      source.onerror = (event) => {
        this.readyState = 0;
        updateStatus();
        if (this.onerror) {
          this.onerror(event);
        }
        if (source.readyState === EventSource.CLOSED && this.source === source) {
          // The browser gave up (say, a 503 while the server stopped): try again later,
          // ourselves, so there is never a second EventSource for this element.
          this.source = null;
          this.retryTimer = setTimeout(() => this.connect(), this.retryDelay);
          this.retryDelay = Math.min(this.retryDelay * 2, RETRY_MAX_MS);
        }
      };
    }

    opened(event) {
      if (this.closed) {
        return;
      }
      this.readyState = 1;
      updateStatus();
      if (this.onopen) {
        this.onopen(event);
      }
    }

    listenTauri(name) {
      tauriEvents.listen(name, (event) => this.announce(name, event && event.payload))
        .then((unlisten) => {
          if (this.closed) {
            unlisten();
            return;
          }
          this.unlisteners.push(unlisten);
          this.announce(name);
        })
        .catch((error) => {
          console.error('blanket: cannot listen to desktop event', name, error);
        });
    }

    announce(name, payload) {
      if (this.closed) {
        return;
      }
      var data = payload === undefined || payload === null ? name : JSON.stringify(payload);
      this.dispatchEvent(new MessageEvent(name, { data: data }));
    }

    /** The page was hidden: let go of the connection (Tauri listeners cost nothing). */
    suspend() {
      clearTimeout(this.retryTimer);
      if (this.source) {
        this.source.close();
        this.source = null;
        this.readyState = 0;
      }
    }

    /** The page came back from the back/forward cache: catch up on what it missed. */
    resume() {
      if (this.closed) {
        return;
      }
      if (tauriEvents) {
        this.names.forEach((name) => this.announce(name));
      } else {
        this.retryDelay = RETRY_FIRST_MS;
        this.connect();
      }
      updateStatus();
    }

    close() {
      this.closed = true;
      this.readyState = 2;
      clearTimeout(this.retryTimer);
      if (this.source) {
        this.source.close();
        this.source = null;
      }
      this.unlisteners.forEach((unlisten) => unlisten());
      this.unlisteners = [];
      sources.delete(this);
      updateStatus();
    }
  }

  window.addEventListener('pagehide', function () {
    sources.forEach(function (source) {
      source.suspend();
    });
  });
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) {
      sources.forEach(function (source) {
        source.resume();
      });
    }
  });

  if (window.htmx) {
    window.htmx.createEventSource = function (url) {
      return new LiveSource(url);
    };
  } else {
    console.error('blanket: htmx did not load, so lists will not update by themselves');
  }

  window.blanketLive = {
    transport: tauriEvents ? 'tauri' : 'sse',
    sources: sources,
  };
})();
