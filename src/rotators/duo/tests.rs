//! Signature test vectors from Duo's reference clients, reproduced exactly:
//! duo_client_python (tests/test_client.py, commit 6e207eb, v5.6.1) and
//! duo_api_golang (duo_test.go, commit 8aff7fd). Then the config and the
//! answer parsing.

use super::*;

fn skey(text: &str) -> DuoSecretKey {
    DuoSecretKey::new(text.to_string())
}

// The fuzz params of test_client.py (TestCanonicalize.test_v1/test_v2,
// TestSign) and duo_test.go (TestUnicodeFuzzKeysAndValues, TestCanonicalizeV2).
const FUZZ_PARAMS: &[(&str, &str)] = &[
    (
        "\u{469a}\u{287b}\u{35d0}\u{8ef3}\u{6727}\u{502a}\u{0810}\u{d091}\u{c8}\u{c170}",
        "\u{0f45}\u{1a76}\u{341a}\u{654c}\u{c23f}\u{9b09}\u{abe2}\u{8343}\u{1b27}\u{60d0}",
    ),
    (
        "\u{7449}\u{7e4b}\u{ccfb}\u{59ff}\u{fe5f}\u{83b7}\u{adcc}\u{900c}\u{cfd1}\u{7813}",
        "\u{8db7}\u{5022}\u{92d3}\u{42ef}\u{207d}\u{8730}\u{acfe}\u{5617}\u{0946}\u{4e30}",
    ),
    (
        "\u{7470}\u{9314}\u{901c}\u{9eae}\u{40d8}\u{4201}\u{82d8}\u{8c70}\u{1d31}\u{a042}",
        "\u{17d9}\u{0ba8}\u{9358}\u{aadf}\u{a42a}\u{48be}\u{fb96}\u{6fe9}\u{b7ff}\u{32f3}",
    ),
    (
        "\u{c2c5}\u{2c1d}\u{2620}\u{3617}\u{96b3}F\u{8605}\u{20e8}\u{ac21}\u{5934}",
        "\u{fba9}\u{41aa}\u{bd83}\u{840b}\u{2615}\u{3e6e}\u{652d}\u{a8b5}\u{d56b}U",
    ),
];

const FUZZ_CANON: &str = "%E4%9A%9A%E2%A1%BB%E3%97%90%E8%BB%B3%E6%9C%A7%E5%80%AA%E0%A0%90%ED%82%91%C3%88%EC%85%B0=%E0%BD%85%E1%A9%B6%E3%90%9A%E6%95%8C%EC%88%BF%E9%AC%89%EA%AF%A2%E8%8D%83%E1%AC%A7%E6%83%90&%E7%91%89%E7%B9%8B%EC%B3%BB%E5%A7%BF%EF%B9%9F%E8%8E%B7%EA%B7%8C%E9%80%8C%EC%BF%91%E7%A0%93=%E8%B6%B7%E5%80%A2%E9%8B%93%E4%8B%AF%E2%81%BD%E8%9C%B0%EA%B3%BE%E5%98%97%E0%A5%86%E4%B8%B0&%E7%91%B0%E9%8C%94%E9%80%9C%E9%BA%AE%E4%83%98%E4%88%81%E8%8B%98%E8%B1%B0%E1%B4%B1%EA%81%82=%E1%9F%99%E0%AE%A8%E9%8D%98%EA%AB%9F%EA%90%AA%E4%A2%BE%EF%AE%96%E6%BF%A9%EB%9F%BF%E3%8B%B3&%EC%8B%85%E2%B0%9D%E2%98%A0%E3%98%97%E9%9A%B3F%E8%98%85%E2%83%A8%EA%B0%A1%E5%A4%B4=%EF%AE%A9%E4%86%AA%EB%B6%83%E8%90%8B%E2%98%95%E3%B9%AE%E6%94%AD%EA%A2%B5%ED%95%ABU";

// test_client.py: JSON_STRING, the canon_json of JSON_BODY.
const JSON_STRING: &str =
    r#"{"alpha":["a","b","c","d"],"data":"abc123","info":{"another":2,"test":1}}"#;

#[test]
fn canon_params_python_and_go_vectors() {
    // test_client.py TestQueryParameters; duo_test.go TestZero/TestOne/TestSimple/…
    assert_eq!(canon_params(&[]), "");
    assert_eq!(
        canon_params(&[("realname", "First Last")]),
        "realname=First%20Last"
    );
    assert_eq!(
        canon_params(&[("username", "root"), ("realname", "First Last")]),
        "realname=First%20Last&username=root"
    );
    assert_eq!(
        canon_params(&[("words", "First Last"), ("success", "true"), ("digit", "5")]),
        "digit=5&success=true&words=First%20Last"
    );
    assert_eq!(
        canon_params(&[
            ("digits", "0123456789"),
            ("letters", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            ("punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
            ("whitespace", "\t\n\x0b\x0c\r "),
        ]),
        "digits=0123456789&letters=abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ&punctuation=%21%22%23%24%25%26%27%28%29%2A%2B%2C-.%2F%3A%3B%3C%3D%3E%3F%40%5B%5C%5D%5E_%60%7B%7C%7D~&whitespace=%09%0A%0B%0C%0D%20"
    );
    assert_eq!(
        canon_params(&[
            ("bar", "\u{2815}\u{aaa3}\u{37cf}\u{4bb7}\u{36e9}\u{cc05}\u{668e}\u{8162}\u{c2bd}\u{a1f1}"),
            ("baz", "\u{0df3}\u{84bd}\u{5669}\u{9985}\u{b8a4}\u{ac3a}\u{7be7}\u{6f69}\u{934a}\u{b91c}"),
            ("foo", "\u{d4ce}\u{d6d6}\u{7938}\u{50c0}\u{8a20}\u{8f15}\u{fd0b}\u{8024}\u{5cb3}\u{c655}"),
            ("qux", "\u{8b97}\u{c846}-\u{828e}\u{831a}\u{ccca}\u{a2d4}\u{8c3e}\u{b8b2}\u{99be}"),
        ]),
        "bar=%E2%A0%95%EA%AA%A3%E3%9F%8F%E4%AE%B7%E3%9B%A9%EC%B0%85%E6%9A%8E%E8%85%A2%EC%8A%BD%EA%87%B1&baz=%E0%B7%B3%E8%92%BD%E5%99%A9%E9%A6%85%EB%A2%A4%EA%B0%BA%E7%AF%A7%E6%BD%A9%E9%8D%8A%EB%A4%9C&foo=%ED%93%8E%ED%9B%96%E7%A4%B8%E5%83%80%E8%A8%A0%E8%BC%95%EF%B4%8B%E8%80%A4%E5%B2%B3%EC%99%95&qux=%E8%AE%97%EC%A1%86-%E8%8A%8E%E8%8C%9A%EC%B3%8A%EA%8B%94%E8%B0%BE%EB%A2%B2%E9%A6%BE"
    );
    assert_eq!(canon_params(FUZZ_PARAMS), FUZZ_CANON);
    assert_eq!(
        canon_params(&[("foo_bar", "2"), ("foo", "1")]),
        "foo=1&foo_bar=2"
    );
    // duo_test.go TestCanonicalize: a repeated key, values sorted after quoting.
    assert_eq!(
        canon_params(&[
            ("username", "H ell?o"),
            ("password", "H-._~i"),
            ("password", "A(!'*)")
        ]),
        "password=A%28%21%27%2A%29&password=H-._~i&username=H%20ell%3Fo"
    );
}

#[test]
fn canonicalize_v2_python_and_go_vector() {
    // test_client.py TestCanonicalize.test_v2; duo_test.go TestCanonicalizeV2.
    assert_eq!(
        canonicalize_v2(
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            FUZZ_PARAMS
        ),
        format!(
            "Fri, 07 Dec 2012 17:18:00 -0000\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n{FUZZ_CANON}"
        )
    );
    // duo_test.go TestCanonicalize: method upper-cased, host lower-cased.
    let canon = canonicalize_v2(
        "5",
        "post",
        "API-XXX.duosecurity.COM",
        "/auth/v2/ping",
        &[
            ("username", "H ell?o"),
            ("password", "H-._~i"),
            ("password", "A(!'*)"),
        ],
    );
    assert_eq!(
        canon,
        "5\nPOST\napi-xxx.duosecurity.com\n/auth/v2/ping\npassword=A%28%21%27%2A%29&password=H-._~i&username=H%20ell%3Fo"
    );
}

fn basic_of(ikey: &str, hexsig: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ikey}:{hexsig}"))
    )
}

#[test]
fn sign_v2_python_hmac_sha1_and_sha512_vectors() {
    // test_client.py TestSign.test_hmac_sha1 and test_hmac_sha512.
    let key = skey("gtdfxv9YgVBYcF6dl2Eq17KUQJN2PLM2ODVTkvoT");
    let sign = |hmac| {
        sign_v2(
            "test_ikey",
            &key,
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "PoSt",
            "foO.BAr52.cOm",
            "/Foo/BaR2/qux",
            FUZZ_PARAMS,
            hmac,
        )
    };
    assert_eq!(
        sign(V2Hmac::Sha1),
        basic_of("test_ikey", "f01811cbbf9561623ab45b893096267fd46a5178")
    );
    assert_eq!(
        sign(V2Hmac::Sha512),
        basic_of(
            "test_ikey",
            "0508065035a03b2a1de2f453e629e791d180329e157f65df6b3e0f08299d4321e1c5c7a7c7ee6b9e5fc80d1fb6fbf3ad5eb7c44dd3b3985a02c37aca53ec3698"
        )
    );
}

#[test]
fn sign_v2_go_documented_vector() {
    // duo_test.go TestSign (the example once documented at duosecurity.com/docs/authapi).
    let res = sign_v2(
        "DIWJ8X6AEYOR5OMC6TQ1",
        &skey("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"),
        "Tue, 21 Aug 2012 17:29:18 -0000",
        "POST",
        "api-XXXXXXXX.duosecurity.com",
        "/accounts/v1/account/list",
        &[("realname", "First Last"), ("username", "root")],
        V2Hmac::Sha512,
    );
    assert_eq!(res, "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6MWJmZmI4OTI0MzQ4ZjdkYjdkYTllN2Q3ZDc0OWRlZDkzYWFmZDAyZDhlOTA0OTYwZGE3Yjk2YzU3NTEwMjIwMTg1YTY0YTI4MjdlZThmMjRhYzVkMzA4MDJhOWVlOTdlNTlkZTQ0YjMwNGIxODI0MmYwZDU5NmQxNWE4MTIyYWY=");
}

#[test]
fn canonicalize_v5_python_vectors_with_x_duo_headers() {
    // test_client.py TestCanonicalize.test_v5_with_json.
    let hashed_body = sha512_hex(JSON_STRING.as_bytes());
    assert_eq!(
        canonicalize_v5(
            "Tue, 17 Nov 2020 14:12:00",
            "POST",
            "foO.BaR52.cOm",
            "/Foo/BaR2/qux",
            &[],
            JSON_STRING,
            &[("X-Duo-Header-1", "header_value_1")],
        )
        .unwrap(),
        format!(
            "Tue, 17 Nov 2020 14:12:00\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n\n{hashed_body}\n\
             630b4bfe7e9abd03da2eee8f0a5d4e60a254ec880a839bcc2223bb5b9443e8ef24d58f0\
             254f1f5934bf8c017ebd0fd5b1acf86766bdbe74185e712a4092df3ed"
        )
    );
    // test_signature_v5_lowers_and_then_sorts_headers.
    assert_eq!(
        canonicalize_v5(
            "Tue, 17 Nov 2020 14:12:00",
            "POST",
            "foO.BaR52.cOm",
            "/Foo/BaR2/qux",
            &[],
            JSON_STRING,
            &[("x-duo-A", "header_value_1"), ("X-Duo-B", "header_value_2")],
        )
        .unwrap(),
        format!(
            "Tue, 17 Nov 2020 14:12:00\nPOST\nfoo.bar52.com\n/Foo/BaR2/qux\n\n{hashed_body}\n\
             60be11a30e0756f2ee2afdce1db849b987dcf86c1133394b\
             d7bbbc9877920330c4d78aceacbb377ab8cbd9a8efe6a410fed4047376635ac71226ab46ca10d2b1"
        )
    );
    // Given in the other order, the headers sort to the same hash.
    assert_eq!(
        canon_x_duo_headers(&[("X-Duo-B", "header_value_2"), ("x-duo-A", "header_value_1")])
            .unwrap(),
        "60be11a30e0756f2ee2afdce1db849b987dcf86c1133394bd7bbbc9877920330c4d78aceacbb377ab8cbd9a8efe6a410fed4047376635ac71226ab46ca10d2b1"
    );
}

#[test]
fn x_duo_headers_are_validated_as_python_does() {
    // client.py _validate_additional_header.
    assert!(canon_x_duo_headers(&[("X-Other", "v")]).is_err());
    assert!(canon_x_duo_headers(&[("X-Duo-A", "a\0b")]).is_err());
    assert!(canon_x_duo_headers(&[("X-Duo-A\0", "v")]).is_err());
    assert!(canon_x_duo_headers(&[("X-Duo-A", "1"), ("x-duo-a", "2")]).is_err());
    // No headers: SHA-512 of the empty string (duo_test.go TestCanonicalizeV5's last line).
    assert_eq!(
        canon_x_duo_headers(&[]).unwrap(),
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    );
}

#[test]
fn canonicalize_v5_go_vector_with_params_and_body() {
    // duo_test.go TestCanonicalizeV5.
    let body = r#"{"activation_code":"duo://x1bTAIQGWXppdi2ctPVn-YXBpLWR1bzEuZHVvLnRlc3Q","user_id":"DU439XKOX2W6LMYHWLEV"}"#;
    assert_eq!(
        canonicalize_v5(
            "Fri, 07 Dec 2012 17:18:00 -0000",
            "post",
            "FOO.example.CoM",
            "/Foo/BaR2/qux",
            &[("username", "H ell?o")],
            body,
            &[],
        )
        .unwrap(),
        "Fri, 07 Dec 2012 17:18:00 -0000
POST
foo.example.com
/Foo/BaR2/qux
username=H%20ell%3Fo
9ddab7d898836a76fafbb0dcef7bc83f14036b39bbb1ebbe43044f7c76338fa699eba8f0d3ecb329a084f32ef23c8a1609efad25032923b651e6f3f6d2f7b773
cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
    );
}

#[test]
fn sign_v5_go_vector() {
    // duo_test.go TestSignV5.
    let res = sign_v5(
        "DIWJ8X6AEYOR5OMC6TQ1",
        &skey("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"),
        "Tue, 21 Aug 2012 17:29:18 -0000",
        "POST",
        "api-XXXXXXXX.duosecurity.com",
        "/accounts/v1/account/list",
        &[("realname", "First Last")],
        r#"{"txid":"f22b1678-252a-4070-b176-0ca2be7319fd"}"#,
        &[],
    )
    .unwrap();
    assert_eq!(res, "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6NzhmNDMyN2Y4MzExNzNjYzc4ZDA5MDdlOTEzZTNjNWEyOGZlNzJkZDQ1NDVhMzQyNTg2YmI2NzE4MWYyYmEzOTNkMjA5MTFlODcwMzYyZjZmYWJhM2RjNmY3ZTlkYjVlOTNhZWQyZjNiZmMxMTBjNmRhZGFmZjRkYzYxNzllMGI=");
}

fn config(json: &str) -> DuoConfig {
    DuoConfig::parse(json).unwrap()
}

#[test]
fn the_bypass_request_matches_duo_client_python_byte_for_byte() {
    // Not a published vector: the request duo_client_python 5.6.1 (commit
    // 6e207eb) builds for Admin('DIWJ8X6AEYOR5OMC6TQ1', 'Zh5eGmUq…',
    // 'API-XXXXXXXX.duosecurity.com').add_user_bypass_codes(
    // 'DU3RP9I2WOC59VZX672N', count=3, valid_secs=0, remaining_uses=1,
    // preserve_existing=False) with formatdate() pinned to the date below,
    // captured at its _make_request.
    let config = config(
        r#"{"api_host":"API-XXXXXXXX.duosecurity.com","integration_key":"DIWJ8X6AEYOR5OMC6TQ1","user_id":"DU3RP9I2WOC59VZX672N","count":3}"#,
    );
    let now = DateTime::parse_from_rfc2822("Tue, 21 Aug 2012 17:29:18 -0000")
        .unwrap()
        .with_timezone(&Utc);
    let request = sign_bypass_codes_request(
        &config,
        &skey("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep\n"),
        now,
    )
    .unwrap();
    assert_eq!(
        request.url,
        "https://api-xxxxxxxx.duosecurity.com/admin/v1/users/DU3RP9I2WOC59VZX672N/bypass_codes"
    );
    assert_eq!(request.date, "Tue, 21 Aug 2012 17:29:18 -0000");
    assert_eq!(
        request.body,
        r#"{"count":"3","preserve_existing":false,"reuse_count":"1","valid_secs":"0"}"#
    );
    assert_eq!(request.authorization, "Basic RElXSjhYNkFFWU9SNU9NQzZUUTE6OGM2M2UxZjJhNzc3NGM5YTViNzY2ODVlZTRkMzllYjJiYWM5NDQwNzUxNzI0ZTI2ZDgwM2NjNDZhYjY4MmYwN2VkOGU4ZjQ4MjQ2NjI1N2U4MTBjZjdhMjNmYjE4MjYwOTJhMjQ2NTgzMTRlOTIxNTRhYjMzNDA4NzNkNmRkMzg=");
}

#[test]
fn every_signed_part_changes_the_signature() {
    let base = r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA"}"#;
    let now = Utc::now();
    let key = skey("secret");
    let sig = |c: &DuoConfig, k: &DuoSecretKey, t| {
        sign_bypass_codes_request(c, k, t).unwrap().authorization
    };
    let reference = sig(&config(base), &key, now);
    for variant in [
        r#"{"api_host":"api-y.duosecurity.com","integration_key":"DIA","user_id":"DUA"}"#,
        r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUB"}"#,
        r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA","count":9}"#,
        r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA","reuse_count":2}"#,
        r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA","valid_secs":60}"#,
    ] {
        assert_ne!(sig(&config(variant), &key, now), reference, "{variant}");
    }
    assert_ne!(sig(&config(base), &skey("secreT"), now), reference);
    assert_ne!(
        sig(&config(base), &key, now + chrono::Duration::seconds(1)),
        reference
    );
    // Same inputs, same signature.
    assert_eq!(sig(&config(base), &key, now), reference);
}

#[test]
fn config_parse_defaults_and_canonical_json_round_trip() {
    let c = config(
        r#"{"user_id":"DU3RP9I2WOC59VZX672N","api_host":"API-abcd1234.duosecurity.com","integration_key":"DIWJ8X6AEYOR5OMC6TQ1"}"#,
    );
    assert_eq!(c.api_host, "api-abcd1234.duosecurity.com");
    assert_eq!(
        (c.count, c.reuse_count, c.valid_secs, c.timeout_secs),
        (10, 1, 0, 30)
    );
    assert_eq!(c.ca_file, None);
    let canonical = c.to_canonical_json();
    assert_eq!(
        canonical,
        r#"{"api_host":"api-abcd1234.duosecurity.com","count":10,"integration_key":"DIWJ8X6AEYOR5OMC6TQ1","reuse_count":1,"timeout_secs":30,"user_id":"DU3RP9I2WOC59VZX672N","valid_secs":0}"#
    );
    assert_eq!(DuoConfig::parse(&canonical).unwrap(), c);

    let c = config(
        r#"{"api_host":"127.0.0.1:8443","integration_key":"DI1","user_id":"DU1","count":1,"reuse_count":0,"valid_secs":86400,"timeout_secs":5,"ca_file":"/etc/duo/ca \"x\".pem"}"#,
    );
    assert_eq!(c.api_host, "127.0.0.1:8443");
    assert_eq!(c.ca_file.as_deref(), Some("/etc/duo/ca \"x\".pem"));
    let canonical = c.to_canonical_json();
    assert_eq!(
        canonical,
        r#"{"api_host":"127.0.0.1:8443","ca_file":"/etc/duo/ca \"x\".pem","count":1,"integration_key":"DI1","reuse_count":0,"timeout_secs":5,"user_id":"DU1","valid_secs":86400}"#
    );
    assert_eq!(DuoConfig::parse(&canonical).unwrap(), c);
}

#[test]
fn config_parse_refuses_by_name() {
    let ok = r#""api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA""#;
    let refused = |json: String, needle: &str| {
        let e = DuoConfig::parse(&json).unwrap_err();
        assert!(e.contains(needle), "{json}: {e}");
        assert!(!e.contains('\n'), "{e}");
    };
    refused("[1]".into(), "not a JSON object");
    refused("{".into(), "not a JSON object");
    refused(format!("{{{ok},\"skey\":\"x\"}}"), "unknown key \"skey\"");
    refused(format!("{{{ok},\"count\":3,\"count\":4}}"), "appears twice");
    refused(
        r#"{"integration_key":"DIA","user_id":"DUA"}"#.into(),
        "needs \"api_host\"",
    );
    refused(
        r#"{"api_host":"api-x.duosecurity.com","user_id":"DUA"}"#.into(),
        "needs \"integration_key\"",
    );
    refused(
        r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA"}"#.into(),
        "needs \"user_id\"",
    );
    refused(format!("{{{ok},\"count\":0}}"), "\"count\"");
    refused(format!("{{{ok},\"count\":11}}"), "from 1 to 10");
    refused(format!("{{{ok},\"count\":\"3\"}}"), "\"count\"");
    refused(format!("{{{ok},\"count\":2.5}}"), "\"count\"");
    refused(format!("{{{ok},\"reuse_count\":-1}}"), "\"reuse_count\"");
    refused(format!("{{{ok},\"timeout_secs\":0}}"), "\"timeout_secs\"");
    refused(format!("{{{ok},\"timeout_secs\":301}}"), "\"timeout_secs\"");
    refused(format!("{{{ok},\"ca_file\":\"ca.pem\"}}"), "absolute path");
    for host in [
        "https://api-x.duosecurity.com",
        "api-x.duosecurity.com/admin",
        "api x.duosecurity.com",
        "api-x.duosecurity.com:0",
        "api-x.duosecurity.com:99999",
        "api-x.duosecurity.com:",
        "-api.duosecurity.com",
        "api..duosecurity.com",
        "user@api-x.duosecurity.com",
        "",
    ] {
        refused(
            format!(
                r#"{{"api_host":{},"integration_key":"DIA","user_id":"DUA"}}"#,
                serde_json::Value::String(host.into())
            ),
            "\"api_host\"",
        );
    }
    for id in ["DU 1", "DU/../x", "", "DU1?x=1", "ＤＵ1"] {
        refused(
            format!(
                r#"{{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":{}}}"#,
                serde_json::Value::String(id.into())
            ),
            "\"user_id\"",
        );
    }
}

#[test]
fn secret_types_do_not_show_secrets() {
    let key = DuoSecretKey::new("hunter2-secret-key \r\n".into());
    assert_eq!(key.expose(), b"hunter2-secret-key");
    assert_eq!(format!("{key:?}"), "DuoSecretKey([redacted])");
    let codes = interpret(
        200,
        Some("OK"),
        r#"{"stat":"OK","response":["123456789","987654321"]}"#,
    )
    .unwrap();
    assert_eq!(format!("{codes:?}"), "BypassCodes([2 redacted])");
    assert_eq!(codes.len(), 2);
    assert_eq!(
        codes.to_secret_value().expose_secret(),
        b"123456789\n987654321\n"
    );
}

#[test]
fn a_secret_key_that_cannot_be_right_is_refused_without_showing_it() {
    let c =
        config(r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA"}"#);
    for bad in ["", "\n", "two words", "tab\there", "naïve"] {
        let e = sign_bypass_codes_request(&c, &skey(bad), Utc::now()).unwrap_err();
        assert!(matches!(e, DuoError::Credentials(_)), "{e}");
        let text = e.to_string();
        assert!(text.contains("secret key"), "{text}");
        if bad.len() > 3 {
            assert!(!text.contains(bad.trim()), "{text}");
        }
    }
}

#[test]
fn duo_answers_are_interpreted_and_named() {
    let e = interpret(
        401,
        Some("Unauthorized"),
        r#"{"code": 40103, "message": "Invalid signature in request credentials", "stat": "FAIL"}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Duo refused the request: 40103 Invalid signature in request credentials (HTTP 401): check integration_key, the secret key and this machine's clock; nothing was changed at Duo"
    );
    assert!(!e.may_have_replaced_codes());

    let e = interpret(
        404,
        Some("Not Found"),
        r#"{"code":40401,"message":"Resource not found","stat":"FAIL"}"#,
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with(
            "Duo refused the request: 40401 Resource not found (HTTP 404): check user_id"
        ),
        "{e}"
    );

    let e = interpret(400, Some("Bad Request"), r#"{"code":40002,"message":"Invalid request parameters","message_detail":"count","stat":"FAIL"}"#)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("40002 Invalid request parameters (count) (HTTP 400)"),
        "{e}"
    );

    let e = interpret(
        429,
        Some("Too Many Requests"),
        r#"{"code":42901,"message":"Too Many Requests","stat":"FAIL"}"#,
    )
    .unwrap_err();
    assert!(matches!(
        e,
        DuoError::RateLimited {
            code: Some(42901),
            ..
        }
    ));
    assert!(e.to_string().contains("42901 Too Many Requests"), "{e}");
    assert!(e.to_string().contains("wait"), "{e}");

    let e = interpret(502, Some("Bad Gateway"), "<html>oops</html>").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Duo refused the request: Bad Gateway (HTTP 502): Duo had a problem; rotate again later; nothing was changed at Duo"
    );

    // A hostile or broken message is one printable line, cut short.
    let long = format!(
        r#"{{"code":40000,"message":"bad\nline{}","stat":"FAIL"}}"#,
        "x".repeat(500)
    );
    let e = interpret(400, None, &long).unwrap_err().to_string();
    assert!(!e.contains('\n') && e.len() < 400, "{e}");
    let bidi = r#"{"code":40000,"message":"a\u202eb\u200bc\u001bd","stat":"FAIL"}"#;
    let e = interpret(400, None, bidi).unwrap_err().to_string();
    assert!(
        e.starts_with("Duo refused the request: 40000 abc d (HTTP 400)"),
        "{e}"
    );

    // 200 but not codes: named, and flagged as possibly applied.
    for (body, needle) in [
        ("not json", "without Duo's JSON"),
        (r#"{"stat":"OK","response":{"a":1}}"#, "not a list of codes"),
        (r#"{"stat":"OK","response":[]}"#, "no codes"),
        (
            r#"{"stat":"OK","response":["12 34"]}"#,
            "not one printable word",
        ),
        (r#"{"stat":"OK","response":[123]}"#, "not a list of codes"),
        (
            r#"{"stat":"FAIL","code":40103,"message":"x"}"#,
            "stat \"FAIL\"",
        ),
    ] {
        let e = interpret(200, Some("OK"), body).unwrap_err();
        assert!(matches!(e, DuoError::Malformed { .. }), "{body}: {e}");
        assert!(e.may_have_replaced_codes());
        assert!(e.to_string().contains(needle), "{body}: {e}");
        assert!(e.to_string().contains("Duo Admin Panel"), "{e}");
        assert!(!e.to_string().contains("12 34"), "{e}");
    }
}

#[test]
fn duo_date_is_rfc_2822_as_python_formats_it() {
    let t = DateTime::parse_from_rfc3339("2026-03-05T07:08:09Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(duo_date(t), "Thu, 05 Mar 2026 07:08:09 -0000");
}

#[test]
fn tls_trust_needs_a_certificate() {
    assert!(TlsTrust::from_ca_pem(b"").is_err());
    assert!(TlsTrust::from_ca_pem(b"hello").is_err());
    let c = config(
        r#"{"api_host":"api-x.duosecurity.com","integration_key":"DIA","user_id":"DUA","ca_file":"/nonexistent/ca.pem"}"#,
    );
    let e = TlsTrust::from_config(&c).unwrap_err().to_string();
    assert!(e.contains("cannot read ca_file /nonexistent/ca.pem"), "{e}");
}
