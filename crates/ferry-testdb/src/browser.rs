//! A real headless Chromium for the tests of Ferry's web pages, driven
//! through WebDriver (chromedriver) with fantoccini.
//!
//! - [`Browser::start`] finds chromedriver and Chromium, or prints a visible
//!   `SKIP browser test TEST: ...` line and returns `None`; under `CI=true`
//!   a missing browser fails the test (the rule of the test databases, see
//!   [`crate::skip_or_fail`]).
//! - Pages are addressed by their `data-testid` attributes, and the rows of
//!   a list by `data-testid` plus `data-key` ([`Browser::by_testid_key`]).
//!   Every lookup polls until its element is there, up to
//!   [`Browser::timeout`]; its error names the selector, the URL and the
//!   page's visible text.
//! - [`Browser::step`] runs a named part of a test. When the part fails (an
//!   error or a panic) it saves a screenshot and the page source as
//!   `NN-STEP-FAILED.png` / `.html` in the test's screenshot folder
//!   (`<target>/browser-shots/<test>/`), then fails the test naming the step
//!   and both files. [`Browser::shot`] saves a screenshot on purpose.
//! - Chromedriver and its Chromium run in a process group of their own,
//!   killed when the [`Browser`] is dropped, also when the test panics.
//!
//! Not here: starting the server under test (each suite does that on
//! `127.0.0.1:0`).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::{Capabilities, TimeoutConfiguration};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;

pub use fantoccini::cookies::Cookie;
pub use fantoccini::elements::Element;

/// The variable naming the chromedriver program.
pub const CHROMEDRIVER_VAR: &str = "FERRY_TEST_CHROMEDRIVER";
/// The variable naming the Chromium program.
pub const CHROMIUM_VAR: &str = "FERRY_TEST_CHROMIUM";
/// The variable setting how long a wait polls, in seconds (default 15).
pub const WAIT_VAR: &str = "FERRY_TEST_BROWSER_WAIT_SECS";
/// The variable that, set to `off`, skips the browser tests where the
/// browser is installed (a failure under `CI=true`, as a missing browser).
pub const SWITCH_VAR: &str = "FERRY_TEST_BROWSER";

const DEFAULT_WAIT: Duration = Duration::from_secs(15);
/// How long chromedriver may take to listen, and Chromium to open a session
/// (a loaded two-core machine starts Chromium slowly).
const START_WAIT: Duration = Duration::from_secs(90);
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How much of the page's visible text an error quotes.
const TEXT_IN_ERRORS: usize = 2000;

/// What a browser action failed with; the message says what was looked
/// for, at which URL, and what the page showed.
#[derive(Clone, Debug)]
pub struct BrowserError {
    message: String,
    /// Whether the message already says where the browser was.
    placed: bool,
}

impl BrowserError {
    /// An error with this message (a [`Browser::step`] adds where the
    /// browser was).
    pub fn new(message: impl Into<String>) -> BrowserError {
        BrowserError {
            message: message.into(),
            placed: false,
        }
    }

    /// The whole message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BrowserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BrowserError {}

/// A WebDriver error from a direct fantoccini call (through
/// [`Browser::client`] or an [`Element`]) inside a [`Browser::step`]: the
/// step adds the screenshot, the URL and the page.
impl From<CmdError> for BrowserError {
    fn from(e: CmdError) -> BrowserError {
        BrowserError::new(format!("WebDriver: {e}"))
    }
}

/// The result of a browser action.
pub type BrowserResult<T> = Result<T, BrowserError>;

/// One poll of a wait: done, or not yet (and why, for the timeout message).
enum Probe<T> {
    Ready(T),
    NotYet(String),
}

/// A headless Chromium session for one test, with its own chromedriver and
/// profile. Every method takes `&self`, so a [`Browser::step`] body can use
/// the browser too.
pub struct Browser {
    client: Client,
    test: String,
    shots: PathBuf,
    shot_no: AtomicUsize,
    timeout: Duration,
    // Dropped after the client: kills chromedriver and Chromium, then the
    // profile folder goes.
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium for test `test` (for
    /// example `serve::promote_one_row`; it names the screenshot folder, so
    /// each test needs its own).
    ///
    /// chromedriver: `FERRY_TEST_CHROMEDRIVER`, else `/usr/bin/chromedriver`,
    /// else `chromedriver` on `PATH`; Chromium: `FERRY_TEST_CHROMIUM`, else
    /// `/usr/bin/chromium`, else `chromium` on `PATH`. When one is missing
    /// (or `FERRY_TEST_BROWSER=off`), prints `SKIP browser test TEST: ...`
    /// and returns `None`; under `CI=true` it panics. A variable naming no executable file, or a
    /// browser that is there but does not start, always panics. Empties the
    /// test's screenshot folder.
    pub async fn start(test: &str) -> Option<Browser> {
        let label = format!("browser test {test}");
        let ci_needs = "CI=true needs chromium and chromedriver (Debian packages chromium and \
                        chromium-driver; .ci/run installs them and exports FERRY_TEST_CHROMEDRIVER)";
        if std::env::var(SWITCH_VAR).is_ok_and(|v| v.trim() == "off") {
            crate::skip_or_fail(&label, &format!("{SWITCH_VAR}=off"), ci_needs);
            return None;
        }
        let driver_program = match find_program(CHROMEDRIVER_VAR, "/usr/bin/chromedriver", "chromedriver") {
            Ok(Some(p)) => p,
            Ok(None) => return skipped(&label, "no chromedriver", CHROMEDRIVER_VAR, ci_needs),
            Err(e) => panic!("{label}: {e}"),
        };
        let chromium = match find_program(CHROMIUM_VAR, "/usr/bin/chromium", "chromium") {
            Ok(Some(p)) => p,
            Ok(None) => return skipped(&label, "no chromium", CHROMIUM_VAR, ci_needs),
            Err(e) => panic!("{label}: {e}"),
        };
        let timeout = wait_from_env().unwrap_or_else(|e| panic!("{label}: {e}"));
        let shots = shots_root().join(file_part(test));
        if shots.exists() {
            std::fs::remove_dir_all(&shots).unwrap_or_else(|e| panic!("{label}: empty {}: {e}", shots.display()));
        }
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{label}: a temporary folder: {e}"));
        let driver = Driver::spawn(&driver_program, &profile.path().join("chromedriver.log"))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let client = open_session(&driver, &chromium, &profile.path().join("profile"))
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}\nchromedriver's log:\n{}", driver.log()));
        Some(Browser {
            client,
            test: test.to_string(),
            shots,
            shot_no: AtomicUsize::new(0),
            timeout,
            _driver: driver,
            _profile: profile,
        })
    }

    /// The test's name, as given to [`Browser::start`].
    pub fn test(&self) -> &str {
        &self.test
    }

    /// The folder this test's screenshots go to:
    /// `<target>/browser-shots/<test>/` (created on the first one).
    pub fn shots_dir(&self) -> &Path {
        &self.shots
    }

    /// How long each wait polls before failing (`FERRY_TEST_BROWSER_WAIT_SECS`,
    /// default 15 s).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets how long each wait polls from now on (a slow page may need
    /// more; a test of a failure, less).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The fantoccini client, for what this API does not cover (its errors
    /// convert into [`BrowserError`] with `?`).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the page to load. A server that does not
    /// answer is an error (the browser would show its own error page); an
    /// HTTP error status is not (see [`Browser::status_of`]).
    pub async fn goto(&self, url: &str) -> BrowserResult<()> {
        if let Err(e) = self.client.goto(url).await {
            return Err(self.fail(format!("cannot open {url}: {e}")).await);
        }
        match self.error_page().await {
            Ok(false) => Ok(()),
            Ok(true) => Err(self.fail(format!("cannot open {url}: no answer")).await),
            Err(e) => Err(self.fail(format!("cannot read the page opened from {url}: {e}")).await),
        }
    }

    /// The URL of the page shown now.
    pub async fn current_url(&self) -> BrowserResult<String> {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .map_err(|e| BrowserError::new(format!("cannot read the current URL: {e}")))
    }

    /// The one element with `data-testid="testid"`, once it is there
    /// (polls up to [`Browser::timeout`]). Several such elements are an
    /// error: use [`Browser::by_testid_key`] for the rows of a list.
    pub async fn by_testid(&self, testid: &str) -> BrowserResult<Element> {
        let css = testid_css(testid, None);
        self.poll(|| self.find_one(&css)).await
    }

    /// The one element with `data-testid="testid"` and `data-key="key"`
    /// (for example `row-select` and `businesses:7`), once it is there.
    pub async fn by_testid_key(&self, testid: &str, key: &str) -> BrowserResult<Element> {
        let css = testid_css(testid, Some(key));
        self.poll(|| self.find_one(&css)).await
    }

    /// Every element with `data-testid="testid"` now, in page order; does
    /// not wait (an empty list is an answer).
    pub async fn all_by_testid(&self, testid: &str) -> BrowserResult<Vec<Element>> {
        let css = testid_css(testid, None);
        match self.client.find_all(Locator::Css(&css)).await {
            Ok(all) => Ok(all),
            Err(e) => Err(self.fail(format!("cannot look for {css}: {e}")).await),
        }
    }

    /// Waits until the element with `data-testid="testid"` is there and
    /// returns it (the same as [`Browser::by_testid`], named for reading).
    pub async fn wait_for(&self, testid: &str) -> BrowserResult<Element> {
        self.by_testid(testid).await
    }

    /// Waits until the element with `data-testid="testid"` shows text
    /// containing `needle`; its whole text.
    pub async fn wait_for_text(&self, testid: &str, needle: &str) -> BrowserResult<String> {
        let css = testid_css(testid, None);
        self.poll(|| self.probe_text(&css, needle)).await
    }

    /// Waits until no element has `data-testid="testid"`.
    pub async fn wait_gone(&self, testid: &str) -> BrowserResult<()> {
        let css = testid_css(testid, None);
        self.poll(|| self.probe_gone(&css)).await
    }

    /// Clears the input with `data-testid="testid"` and types `text` into it.
    pub async fn fill(&self, testid: &str, text: &str) -> BrowserResult<()> {
        let css = testid_css(testid, None);
        let input = self.poll(|| self.find_one(&css)).await?;
        let typed = match input.clear().await {
            Ok(()) => input.send_keys(text).await,
            Err(e) => Err(e),
        };
        match typed {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(format!("cannot type into {css}: {e}")).await),
        }
    }

    /// Chooses the option whose value is `value` in the `<select>` with
    /// `data-testid="testid"`.
    pub async fn select(&self, testid: &str, value: &str) -> BrowserResult<()> {
        let css = testid_css(testid, None);
        let select = self.poll(|| self.find_one(&css)).await?;
        match select.select_by_value(value).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(format!("cannot choose {value:?} in {css}: {e}")).await),
        }
    }

    /// Clicks the element with `data-testid="testid"` (waiting until it is
    /// there and can be clicked). One that opens a `confirm()` returns with
    /// the dialog open (see [`Browser::accept_confirm`]). After a click
    /// that loads another page, wait for an element of that page
    /// ([`Browser::wait_for`], [`Browser::wait_for_text`]).
    pub async fn click(&self, testid: &str) -> BrowserResult<()> {
        self.click_css(testid_css(testid, None)).await
    }

    /// Clicks the element with `data-testid="testid"` and `data-key="key"`
    /// (a row's checkbox or button).
    pub async fn click_key(&self, testid: &str, key: &str) -> BrowserResult<()> {
        self.click_css(testid_css(testid, Some(key))).await
    }

    /// The visible text of the element with `data-testid="testid"`.
    pub async fn text(&self, testid: &str) -> BrowserResult<String> {
        self.text_css(testid_css(testid, None)).await
    }

    /// The visible text of the element with `data-testid="testid"` and
    /// `data-key="key"` (a row's cell).
    pub async fn text_key(&self, testid: &str, key: &str) -> BrowserResult<String> {
        self.text_css(testid_css(testid, Some(key))).await
    }

    async fn text_css(&self, css: String) -> BrowserResult<String> {
        let element = self.poll(|| self.find_one(&css)).await?;
        match element.text().await {
            Ok(t) => Ok(t),
            Err(e) => Err(self.fail(format!("cannot read the text of {css}: {e}")).await),
        }
    }

    /// The visible text of the whole page (its `<body>`).
    pub async fn page_text(&self) -> BrowserResult<String> {
        self.visible_text()
            .await
            .map_err(|e| BrowserError::new(format!("cannot read the page's text: {e}")))
    }

    /// The page's HTML source as the browser has it now.
    pub async fn source(&self) -> BrowserResult<String> {
        self.client
            .source()
            .await
            .map_err(|e| BrowserError::new(format!("cannot read the page source: {e}")))
    }

    /// Waits for the `confirm()` (or `alert()`) dialog a click opened,
    /// accepts it, and returns its message.
    pub async fn accept_confirm(&self) -> BrowserResult<String> {
        let message = self.poll(|| self.probe_dialog()).await?;
        match self.client.accept_alert().await {
            Ok(()) => Ok(message),
            Err(e) => Err(self.fail(format!("cannot accept the dialog {message:?}: {e}")).await),
        }
    }

    /// Waits for the `confirm()` dialog a click opened, cancels it, and
    /// returns its message.
    pub async fn dismiss_confirm(&self) -> BrowserResult<String> {
        let message = self.poll(|| self.probe_dialog()).await?;
        match self.client.dismiss_alert().await {
            Ok(()) => Ok(message),
            Err(e) => Err(self.fail(format!("cannot cancel the dialog {message:?}: {e}")).await),
        }
    }

    /// The cookies the browser holds for the current page.
    pub async fn cookies(&self) -> BrowserResult<Vec<Cookie<'static>>> {
        match self.client.get_all_cookies().await {
            Ok(all) => Ok(all),
            Err(e) => Err(self.fail(format!("cannot read the cookies: {e}")).await),
        }
    }

    /// The cookie named `name` for the current page, if the browser holds one.
    pub async fn cookie(&self, name: &str) -> BrowserResult<Option<Cookie<'static>>> {
        Ok(self.cookies().await?.into_iter().find(|c| c.name() == name))
    }

    /// The HTTP status of a `GET url`, fetched by the current page (with
    /// its cookies; redirects followed). WebDriver itself reports no
    /// status: open a page of the same server first, since a page of
    /// another origin cannot read the answer.
    pub async fn status_of(&self, url: &str) -> BrowserResult<u16> {
        const FETCH: &str = "const [url, done] = arguments; \
            fetch(url, {credentials: 'same-origin'}) \
              .then(r => done(r.status), e => done('fetch failed: ' + e));";
        let answer = match self.client.execute_async(FETCH, vec![url.into()]).await {
            Ok(a) => a,
            Err(e) => return Err(self.fail(format!("cannot fetch {url} from the page: {e}")).await),
        };
        match answer.as_u64().and_then(|s| u16::try_from(s).ok()) {
            Some(status) if status > 0 => Ok(status),
            _ => Err(self.fail(format!("GET {url} from the page: {answer}")).await),
        }
    }

    /// Saves a screenshot as `<shots>/NN-name.png` (NN counts this test's
    /// files) and returns its path.
    pub async fn shot(&self, name: &str) -> BrowserResult<PathBuf> {
        let path = self.next_file(name, "png")?;
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| BrowserError::new(format!("cannot take the screenshot {}: {e}", path.display())))?;
        write_file(&path, &png)?;
        Ok(path)
    }

    /// Runs one named part of the test and returns its value. When it
    /// fails (an error, or a panic such as a failed `assert!`), saves
    /// `NN-name-FAILED.png` and `NN-name-FAILED.html` and panics with the
    /// step's name, what went wrong and both paths.
    pub async fn step<T, F>(&self, name: &str, body: F) -> T
    where
        F: Future<Output = BrowserResult<T>>,
    {
        match self.try_step(name, body).await {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Browser::step`] that returns the failure (after saving the
    /// screenshot and the page source) instead of panicking.
    pub async fn try_step<T, F>(&self, name: &str, body: F) -> BrowserResult<T>
    where
        F: Future<Output = BrowserResult<T>>,
    {
        let (why, placed) = match AssertUnwindSafe(body).catch_unwind().await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => (e.message, e.placed),
            Err(payload) => (format!("panicked: {}", panic_message(payload.as_ref())), false),
        };
        let evidence = self.save_failure(name).await;
        let place = if placed {
            String::new()
        } else {
            format!("\n{}", self.where_now().await)
        };
        Err(BrowserError {
            message: format!(
                "browser test {}: step `{name}` failed: {why}{place}\n{evidence}",
                self.test
            ),
            placed: true,
        })
    }

    /// Writes `NN-name-FAILED.png` and `.html`; says where, or why not.
    async fn save_failure(&self, name: &str) -> String {
        let failed = format!("{name}-FAILED");
        let png = match self.next_file(&failed, "png") {
            Ok(p) => p,
            Err(e) => return e.message,
        };
        // An open dialog fails the first command (and is dismissed by it):
        // one more try gets the page.
        let shot = match self.client.screenshot().await {
            Ok(bytes) => Ok(bytes),
            Err(_) => self.client.screenshot().await,
        };
        let shot_line = match shot {
            Ok(bytes) => match write_file(&png, &bytes) {
                Ok(()) => format!("screenshot: {}", png.display()),
                Err(e) => e.message,
            },
            Err(e) => format!("no screenshot: {e}"),
        };
        let html = png.with_extension("html");
        let source_line = match self.client.source().await {
            Ok(source) => match write_file(&html, source.as_bytes()) {
                Ok(()) => format!("page source: {}", html.display()),
                Err(e) => e.message,
            },
            Err(e) => format!("no page source: {e}"),
        };
        format!("{shot_line}\n{source_line}")
    }

    /// The next numbered file name in the test's screenshot folder
    /// (created).
    fn next_file(&self, name: &str, ext: &str) -> BrowserResult<PathBuf> {
        std::fs::create_dir_all(&self.shots)
            .map_err(|e| BrowserError::new(format!("cannot create {}: {e}", self.shots.display())))?;
        let n = self.shot_no.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(self.shots.join(format!("{n:02}-{}.{ext}", file_part(name))))
    }

    /// Polls `probe` every 100 ms until it is ready, fails, or
    /// [`Browser::timeout`] passes (then the error says what it last saw,
    /// where, and the page's text).
    async fn poll<T, F, Fut>(&self, mut probe: F) -> BrowserResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Probe<T>, CmdError>>,
    {
        let started = Instant::now();
        loop {
            let why = match probe().await {
                Ok(Probe::Ready(value)) => return Ok(value),
                Ok(Probe::NotYet(why)) => why,
                Err(e) if e.is_stale_element_reference() => "the element was replaced".to_string(),
                Err(e) => return Err(self.fail(format!("WebDriver: {e}")).await),
            };
            if started.elapsed() >= self.timeout {
                let waited = self.timeout.as_secs_f32();
                return Err(self.fail(format!("{why} after waiting {waited:.0} s")).await);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// The single element matching `css`; not yet when there is none; an
    /// error when there are several.
    async fn find_one(&self, css: &str) -> Result<Probe<Element>, CmdError> {
        let mut all = self.client.find_all(Locator::Css(css)).await?;
        match all.len() {
            0 => Ok(Probe::NotYet(format!("no element {css}"))),
            1 => Ok(Probe::Ready(all.remove(0))),
            n => Err(CmdError::InvalidArgument(
                css.to_string(),
                format!("{n} elements match {css}, where one was expected (add its data-key)"),
            )),
        }
    }

    async fn probe_text(&self, css: &str, needle: &str) -> Result<Probe<String>, CmdError> {
        let element = match self.find_one(css).await? {
            Probe::Ready(e) => e,
            Probe::NotYet(why) => return Ok(Probe::NotYet(why)),
        };
        let text = element.text().await?;
        if text.contains(needle) {
            Ok(Probe::Ready(text))
        } else {
            Ok(Probe::NotYet(format!("{css} shows {text:?}, without {needle:?},")))
        }
    }

    async fn probe_gone(&self, css: &str) -> Result<Probe<()>, CmdError> {
        let n = self.client.find_all(Locator::Css(css)).await?.len();
        if n == 0 {
            Ok(Probe::Ready(()))
        } else {
            Ok(Probe::NotYet(format!("{n} elements {css} still there")))
        }
    }

    async fn probe_dialog(&self) -> Result<Probe<String>, CmdError> {
        match self.client.get_alert_text().await {
            Ok(message) => Ok(Probe::Ready(message)),
            Err(e) if e.is_no_such_alert() => Ok(Probe::NotYet("no dialog open".to_string())),
            Err(e) => Err(e),
        }
    }

    /// Clicks the one element matching `css`, trying again while it cannot
    /// take the click yet (hidden, covered, replaced).
    async fn click_css(&self, css: String) -> BrowserResult<()> {
        let started = Instant::now();
        loop {
            let element = self.poll(|| self.find_one(&css)).await?;
            let e = match element.click().await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let not_yet = e.is_element_not_interactable()
                || e.is_stale_element_reference()
                || matches!(&e, CmdError::Standard(w) if w.error == ErrorStatus::ElementClickIntercepted);
            if !not_yet || started.elapsed() >= self.timeout {
                return Err(self.fail(format!("cannot click {css}: {e}")).await);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Whether the browser shows its own error page (no server answered).
    async fn error_page(&self) -> Result<bool, CmdError> {
        let href = self.client.execute("return document.location.href;", vec![]).await?;
        Ok(href.as_str().is_some_and(|h| h.starts_with("chrome-error:")))
    }

    async fn visible_text(&self) -> Result<String, CmdError> {
        self.client.find(Locator::Css("body")).await?.text().await
    }

    /// Where the browser is and what the page shows, for error messages.
    async fn where_now(&self) -> String {
        let url = match (self.client.current_url().await, self.error_page().await) {
            (Ok(u), Ok(true)) => format!("{u} (the browser's error page: no answer)"),
            (Ok(u), _) => u.to_string(),
            (Err(e), _) => format!("(URL unknown: {e})"),
        };
        let text = match self.visible_text().await {
            Ok(t) => clip(&t, TEXT_IN_ERRORS),
            Err(e) => format!("(text unknown: {e})"),
        };
        format!("at {url}; the page shows:\n{text}")
    }

    /// An error saying `what`, where the browser is and what it shows.
    async fn fail(&self, what: String) -> BrowserError {
        BrowserError {
            message: format!("{what}\n{}", self.where_now().await),
            placed: true,
        }
    }
}

/// Prints the SKIP line (or fails under `CI=true`) for a missing program.
fn skipped(label: &str, what: &str, var: &str, ci_needs: &str) -> Option<Browser> {
    crate::skip_or_fail(
        label,
        &format!("{what} ({var} is not set, and it is neither in /usr/bin nor on PATH)"),
        ci_needs,
    );
    None
}

/// The program in `var` (which must then be an executable file), else at
/// `default`, else `name` on `PATH`; `Ok(None)` when there is none.
fn find_program(var: &str, default: &str, name: &str) -> Result<Option<PathBuf>, String> {
    if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        return if is_executable(&path) {
            Ok(Some(path))
        } else {
            Err(format!("{var}={} is not an executable file", path.display()))
        };
    }
    if is_executable(Path::new(default)) {
        return Ok(Some(PathBuf::from(default)));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The wait from `FERRY_TEST_BROWSER_WAIT_SECS`, else 15 s.
fn wait_from_env() -> Result<Duration, String> {
    match std::env::var(WAIT_VAR) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{WAIT_VAR}={v} is not a whole number of seconds above 0")),
        _ => Ok(DEFAULT_WAIT),
    }
}

/// `<target>/browser-shots`: `CARGO_TARGET_DIR` when it is an absolute
/// path, else the target folder holding this test binary
/// (`<target>/<profile>/deps/<binary>`).
fn shots_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        if dir.is_absolute() {
            return dir.join("browser-shots");
        }
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    let target = exe
        .ancestors()
        .nth(3)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps/", exe.display()));
    target.join("browser-shots")
}

/// `text` made safe as a file name: letters, digits, `-`, `_` and `.`
/// stay; anything else becomes `_`.
fn file_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The CSS selector `[data-testid="ID"]`, with `[data-key="KEY"]`.
fn testid_css(testid: &str, key: Option<&str>) -> String {
    let quote = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    match key {
        Some(k) => format!("[data-testid=\"{}\"][data-key=\"{}\"]", quote(testid), quote(k)),
        None => format!("[data-testid=\"{}\"]", quote(testid)),
    }
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} more characters)", &text[..cut], text[cut..].chars().count()),
        None => text.to_string(),
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> BrowserResult<()> {
    std::fs::write(path, bytes).map_err(|e| BrowserError::new(format!("cannot write {}: {e}", path.display())))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// Opens the WebDriver session: headless Chromium with a fresh profile.
async fn open_session(driver: &Driver, chromium: &Path, profile: &Path) -> Result<Client, String> {
    let mut caps = Capabilities::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium.display().to_string(),
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{}", driver.port);
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(caps);
    let connect = builder.connect(&url);
    let client = match tokio::time::timeout(START_WAIT, connect).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            return Err(format!(
                "chromedriver at {url} could not start {}: {e}",
                chromium.display()
            ))
        }
        Err(_) => {
            return Err(format!(
                "chromedriver at {url} did not open a session of {} within {} s",
                chromium.display(),
                START_WAIT.as_secs()
            ))
        }
    };
    // Page loads and scripts get the start-up allowance; no implicit wait
    // (this module polls itself, with messages).
    let timeouts = TimeoutConfiguration::new(Some(START_WAIT), Some(START_WAIT), Some(Duration::ZERO));
    client
        .update_timeouts(timeouts)
        .await
        .map_err(|e| format!("cannot set the session's timeouts: {e}"))?;
    Ok(client)
}

/// A chromedriver process (the leader of a process group that its Chromium
/// joins), listening on `port`; the group is killed on drop.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a port of its choosing and waits until it
    /// says which one it listens on.
    async fn spawn(program: &Path, log: &Path) -> Result<Driver, String> {
        use std::os::unix::process::CommandExt as _;
        let out = std::fs::File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new(program)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let mut driver = Driver {
            child,
            port: 0,
            log: log.to_path_buf(),
        };
        driver.port = driver.listening_port(program).await?;
        Ok(driver)
    }

    /// Reads the port from chromedriver's `started successfully on port N`
    /// line.
    async fn listening_port(&mut self, program: &Path) -> Result<u16, String> {
        const SAID: &str = "was started successfully on port ";
        let started = Instant::now();
        loop {
            let log = self.log();
            if let Some(rest) = log.split(SAID).nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return digits.parse().map_err(|e| {
                    format!(
                        "{} says it started, on port {digits:?} ({e}):\n{log}",
                        program.display()
                    )
                });
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening:\n{log}",
                    program.display()
                ));
            }
            if started.elapsed() >= START_WAIT {
                return Err(format!(
                    "{} did not listen within {} s:\n{log}",
                    program.display(),
                    START_WAIT.as_secs()
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// chromedriver's output so far.
    fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        use nix::sys::signal::{killpg, Signal};
        use nix::unistd::Pid;
        let pid = self.child.id();
        let group = Pid::from_raw(i32::try_from(pid).expect("a process id fits in pid_t"));
        if let Err(e) = killpg(group, Signal::SIGKILL) {
            crate::announce(&format!(
                "browser: could not kill chromedriver's process group {pid}: {e}"
            ));
        }
        if let Err(e) = self.child.wait() {
            crate::announce(&format!("browser: could not reap chromedriver {pid}: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_quote_their_values() {
        assert_eq!(testid_css("row-select", None), r#"[data-testid="row-select"]"#);
        assert_eq!(
            testid_css("row-select", Some("businesses:7")),
            r#"[data-testid="row-select"][data-key="businesses:7"]"#
        );
        assert_eq!(testid_css(r#"a"b\c"#, None), r#"[data-testid="a\"b\\c"]"#);
    }

    #[test]
    fn file_names_keep_safe_characters_only() {
        assert_eq!(file_part("serve::promote one/row"), "serve__promote_one_row");
        assert_eq!(file_part("step-1_a.b"), "step-1_a.b");
    }

    #[test]
    fn programs_are_found_at_their_default_or_missing() {
        let var = "FERRY_TEST_BROWSER_NEVER_SET";
        assert_eq!(find_program(var, "/bin/sh", "sh"), Ok(Some(PathBuf::from("/bin/sh"))));
        assert_eq!(
            find_program(var, "/nonexistent/ferry-x", "ferry-no-such-program"),
            Ok(None)
        );
        // Not executable: a directory.
        assert_eq!(find_program(var, "/tmp", "ferry-no-such-program"), Ok(None));
    }

    #[test]
    fn clipped_text_says_how_much_was_left_out() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdé", 3), "abc… (2 more characters)");
    }
}
