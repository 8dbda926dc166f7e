"""Personal-data redaction (bot/privacy/redaction.py) on the formats customers really type, in English, Malay and a
mix."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.privacy import redaction as privacy
from bot.privacy.redaction import PLACEHOLDERS, PersonalData, find_personal_data, redact

# (message, [(label, text found)])
FOUND = [
    # e-mail
    ("my email is john.tan@company.com.my", [("EMAIL", "john.tan@company.com.my")]),
    ("send to ali_b+ksos@gmail.com thanks", [("EMAIL", "ali_b+ksos@gmail.com")]),
    ("EMAIL SAYA JOHN.TAN@COMPANY.COM.MY", [("EMAIL", "JOHN.TAN@COMPANY.COM.MY")]),
    ("emel: aminah@majujaya.com.my.", [("EMAIL", "aminah@majujaya.com.my")]),
    ("(harmoni.teknik@gmail.com)", [("EMAIL", "harmoni.teknik@gmail.com")]),
    ("contact siti-nur@klinik-gigi.my", [("EMAIL", "siti-nur@klinik-gigi.my")]),
    # phones
    ("call me at +6012-345 6789 pls", [("PHONE", "+6012-345 6789")]),
    ("no fon +60 12-345 6789", [("PHONE", "+60 12-345 6789")]),
    ("hp sy 012-3456789", [("PHONE", "012-3456789")]),
    ("whatsapp 0123456789 ok", [("PHONE", "0123456789")]),
    ("my number 011-2345 6789", [("PHONE", "011-2345 6789")]),
    ("office 03-2345 6789", [("PHONE", "03-2345 6789")]),
    ("pejabat +603 2345 6789", [("PHONE", "+603 2345 6789")]),
    ("+603-8911 2233 is the shop", [("PHONE", "+603-8911 2233")]),
    ("call 60123456789", [("PHONE", "60123456789")]),
    ("tel (03) 2345 6789.", [("PHONE", "(03) 2345 6789")]),
    ("penang office 04-123 4567", [("PHONE", "04-123 4567")]),
    ("my SG number +65 9123 4567", [("PHONE", "+65 9123 4567")]),
    # NRIC
    ("nombor ic sy 901231-14-5678", [("NRIC", "901231-14-5678")]),
    ("IC: 901231145678", [("NRIC", "901231145678")]),
    ("my ic is 901231 14 5678 ya", [("NRIC", "901231 14 5678")]),
    ("director NRIC 850612-10-5123", [("NRIC", "850612-10-5123")]),
    ("leap day ic 000229-10-1234", [("NRIC", "000229-10-1234")]),
    # passports
    ("passport A12345678", [("PASSPORT", "A12345678")]),
    ("H12345678 tu pasport sy", [("PASSPORT", "H12345678")]),
    ("k12345678", [("PASSPORT", "k12345678")]),
    ("no. pasport E1234567", [("PASSPORT", "E1234567")]),
    ("my passport number is AB123456", [("PASSPORT", "AB123456")]),
    ("Passport No: X1234567", [("PASSPORT", "X1234567")]),
    ("E1234567 is my passport", [("PASSPORT", "E1234567")]),
    # account numbers
    ("akaun 1012345678 kena suspend", [("ACCOUNT_NUMBER", "1012345678")]),
    ("my acc no 101 234 5678", [("ACCOUNT_NUMBER", "101 234 5678")]),
    ("account 101-234-5678?", [("ACCOUNT_NUMBER", "101-234-5678")]),
    ("acc 1000000001", [("ACCOUNT_NUMBER", "1000000001")]),
    ("acc 101-234 5678", [("ACCOUNT_NUMBER", "101-234 5678")]),
    ("6012345678 is my account", [("ACCOUNT_NUMBER", "6012345678")]),   # "60" but no valid phone: account
    # one-time codes
    ("kod: 482 913", [("ONE_TIME_CODE", "482 913")]),
    ("the code is 482913", [("ONE_TIME_CODE", "482913")]),
    ("482-913", [("ONE_TIME_CODE", "482-913")]),
    ("kod saya 012345.", [("ONE_TIME_CODE", "012345")]),
    # activation codes
    ("code MJ7K2-QX9P4-LT3RW-8DZ5N", [("ACTIVATION_CODE", "MJ7K2-QX9P4-LT3RW-8DZ5N")]),
    ("kod aktivasi mj7k2-qx9p4-lt3rw-8dz5n tak jalan", [("ACTIVATION_CODE", "mj7k2-qx9p4-lt3rw-8dz5n")]),
    ("TH4W8 Z2K6M P9R3X C7V5B", [("ACTIVATION_CODE", "TH4W8 Z2K6M P9R3X C7V5B")]),
    ("activation code: MJ7K2QX9P4LT3RW8DZ5N", [("ACTIVATION_CODE", "MJ7K2QX9P4LT3RW8DZ5N")]),
    # payment cards (Luhn-valid test numbers)
    ("no kad sy 4111 1111 1111 1111", [("CARD_NUMBER", "4111 1111 1111 1111")]),
    ("card 4111-1111-1111-1111 exp 12/27", [("CARD_NUMBER", "4111-1111-1111-1111")]),
    ("kad kredit: 5555555555554444.", [("CARD_NUMBER", "5555555555554444")]),
    ("bayar guna card 4111111111111111 boleh?", [("CARD_NUMBER", "4111111111111111")]),
    ("amex 3782 822463 10005", [("CARD_NUMBER", "3782 822463 10005")]),
    ("diners 3056 930902 5904", [("CARD_NUMBER", "3056 930902 5904")]),
    ("old visa 4222222222222", [("CARD_NUMBER", "4222222222222")]),
    ("19 digits 6011 1111 1111 1111 110", [("CARD_NUMBER", "6011 1111 1111 1111 110")]),
    ("4000-0000-0000-0000-006", [("CARD_NUMBER", "4000-0000-0000-0000-006")]),
    ("6011111111111111110", [("CARD_NUMBER", "6011111111111111110")]),
    # business registration numbers (SSM)
    ("SSM no 202001012345 (1234567-X)", [("BRN", "202001012345"), ("BRN", "1234567-X")]),
    ("ssm 202001012345", [("BRN", "202001012345")]),   # month 20: no NRIC
    ("Registration No: 201901000005 (1312525-A)", [("BRN", "201901000005"), ("BRN", "1312525-A")]),
    ("no pendaftaran syarikat 2020-01-012345", [("BRN", "2020-01-012345")]),
    ("reg no 2015 03 012345 ya", [("BRN", "2015 03 012345")]),
    ("old company 1965-01-000123", [("BRN", "1965-01-000123")]),
    ("company no. 123456-A.", [("BRN", "123456-A")]),
    ("no syarikat sy 1234567-x", [("BRN", "1234567-x")]),
    ("roc 123456 A", [("BRN", "123456 A")]),
    ("kod 123456-A", [("BRN", "123456-A")]),           # the check letter makes it a BRN, not a code
    ("no perniagaan JM0123456-K", [("BRN", "JM0123456-K")]),
    ("no pendaftaran perniagaan 001234567-K", [("BRN", "001234567-K")]),
    ("SA0123456-A tu no ssm kedai sy", [("BRN", "SA0123456-A")]),
    ("ssm sa0123456-a", [("BRN", "sa0123456-a")]),
    ("LLP no LLP0012345-LGN", [("BRN", "LLP0012345-LGN")]),
    # glued to a word or to each other, as typed in a hurry
    ("hp:0123456789", [("PHONE", "0123456789")]),
    ("tel:+60123456789", [("PHONE", "+60123456789")]),
    ("ic:901231-14-5678,", [("NRIC", "901231-14-5678")]),
    ("acc#1012345678", [("ACCOUNT_NUMBER", "1012345678")]),
    ("kod=482913", [("ONE_TIME_CODE", "482913")]),
    ("no.0123456789", [("PHONE", "0123456789")]),
    ("0123456789/0198765432", [("PHONE", "0123456789"), ("PHONE", "0198765432")]),
    ("kad:4111111111111111", [("CARD_NUMBER", "4111111111111111")]),
    ("brn#1234567-X", [("BRN", "1234567-X")]),
    ("email:john@company.com.my", [("EMAIL", "john@company.com.my")]),
    ('code "482913"!', [("ONE_TIME_CODE", "482913")]),
    ("kod anda ialah 482913 dan sah 5 minit", [("ONE_TIME_CODE", "482913")]),
    # several in one message
    ("hi, acc 1012345678, ic 901231-14-5678, email john@company.com.my, hp 012-345 6789",
     [("ACCOUNT_NUMBER", "1012345678"), ("NRIC", "901231-14-5678"), ("EMAIL", "john@company.com.my"),
      ("PHONE", "012-345 6789")]),
    ("kod 482913 utk akaun 101 234 5678", [("ONE_TIME_CODE", "482913"), ("ACCOUNT_NUMBER", "101 234 5678")]),
    ("activation MJ7K2-QX9P4-LT3RW-8DZ5N on 5 devices, call +60 19-876 5432",
     [("ACTIVATION_CODE", "MJ7K2-QX9P4-LT3RW-8DZ5N"), ("PHONE", "+60 19-876 5432")]),
    ("paid RM 39 for 12 months, code 482 913", [("ONE_TIME_CODE", "482 913")]),
    ("syarikat 1234567-X, kad 4111 1111 1111 1111, ic 901231-14-5678, hp 012-345 6789",
     [("BRN", "1234567-X"), ("CARD_NUMBER", "4111 1111 1111 1111"), ("NRIC", "901231-14-5678"),
      ("PHONE", "012-345 6789")]),
    ("bill acc 1012345678 paid by card 5555 5555 5555 4444 for SSM 202001012345",
     [("ACCOUNT_NUMBER", "1012345678"), ("CARD_NUMBER", "5555 5555 5555 4444"), ("BRN", "202001012345")]),
]

# Messages that hold no personal data and must come back unchanged.
CLEAN = [
    "",
    "hello, how do I install KSOS?",
    "I paid RM 39 yesterday",
    "it costs RM39.90 a month",
    "total RM 1,299.00",
    "my bill date is 22/11/2026",
    "bill on 22 Nov",
    "contract until 2026",
    "12 months contract",
    "I have 5 devices",
    "JomPAY biller code 8888",
    "call Unifi at 100",
    "go to https://ksos.kaspersky.com to sign in",
    "pay at https://i.unifi.my/paymentchannel",
    "see https://support.kaspersky.com/KSOS/7.0/en-US/43520.htm",
    "Standard plan or Starter plan?",
    "version 21.3.10.391 installed",
    "what is the code?",
    "kod tak sampai",
    "see FAQ 18",
    "email help@tm.com.my for help",
    "mail from no-reply@kasperskymy.com",
    "the code 482 913 1234 5",             # part of a longer number: no code
    "ref 4829131",                         # 7 digits
    "RM 482913",                           # an amount, not a code
    "THANK YOUUU ABCDE FGHIJ",             # four 5-letter words are no activation code
    "passport A1234",                      # too short for a passport
    "at 10:15 on 22-11-2026",
    "card ending ******5678",
    "[phone] [account number] [code]",
    "sy guna win10 pro 64bit 8gb ram, 30GB free",
    "Device KAUNTER-PC1 and PEJABAT-PC",
    "page 1-2-3, step 4",
    "Tarikh 2026-11-22 10:15am",
    "last 4 digits 5678",
    "MYR 482913",
    "I have 3 PCs and 2 phones 1 server",
    # no card: Luhn fails, too short or long, or part of a longer number
    "card 4111 1111 1111 1112",
    "order no 1234567890123456",
    "order 1234-5678-9012-3456",
    "JomPAY 8888 ref 1234567890123456",
    "invoice 419911111111",                # 12 digits, no date: no NRIC either
    "ref 41111111111111111111",            # 20 digits
    "4111 1111 1111 1111 1",               # joined to one more digit
    "4111 11 1111 1111 1111",              # a group of 2
    "RM 4111111111111111",
    "RM1234.56",
    "total RM 4,111.11",
    # no BRN: short numbers with a letter are words ("3-D Secure", a "4-G" router)
    "3-D Secure is on for my card",
    "router 4-G tak stabil",
    # no BRN: year, type or shape wrong
    "202013012345",                        # type 13
    "202000012345",                        # type 00
    "202007012345",                        # type 07
    "210001012345",                        # year 2100
    "189901012345",                        # year 1899
    "2020-1-012345",
    "from 2019 to 2026",
    "tarikh 22-11-2026 pukul 10:15",
    "version 21.3.10.391 and 2024-01-15",
    "ref 1234567X",                        # check letter glued on
    "ref 12345678-X",                      # 8 digits
    "ABC-D",
    "XYZ-1A",
    "Wi-Fi 5 GHz",
    "Windows 11 S mode",
    "since 2024 I use KSOS",
    "after step 3 I restarted",
    "RM 1234-A",
    "No. 12-B-3, Jalan 5",
    "JM012345-K",                          # 6 digits
    "LLP001234-LGN",                       # 6 digits
]

# Exact redactions of whole messages.
REDACTED = [
    ("nombor ic sy 901231-14-5678", "nombor ic sy [nric]"),
    ("call me at +6012-345 6789 pls", "call me at [phone] pls"),
    ("kod: 482 913", "kod: [code]"),
    ("akaun 1012345678 kena suspend", "akaun [account number] kena suspend"),
    ("emel sy ali_b+ksos@gmail.com, pasport A12345678", "emel sy [email], pasport [passport]"),
    ("key mj7k2 qx9p4 lt3rw 8dz5n expired", "key [activation code] expired"),
    ("RM 39 for 12 months; acc 101-234-5678", "RM 39 for 12 months; acc [account number]"),
    ("no kad sy 4111 1111 1111 1111 exp 12/27", "no kad sy [card number] exp 12/27"),
    ("SSM no 202001012345 (1234567-X)", "SSM no [brn] ([brn])"),
]


@pytest.mark.parametrize("message, expected", FOUND)
def test_finds_personal_data(message, expected):
    assert [(item.label, item.text) for item in find_personal_data(message)] == expected


@pytest.mark.parametrize("message", CLEAN)
def test_leaves_clean_messages_alone(message):
    assert find_personal_data(message) == []
    assert redact(message) is message


@pytest.mark.parametrize("message, expected", REDACTED)
def test_redacts_whole_messages(message, expected):
    assert redact(message) == expected


@pytest.mark.parametrize("message", [message for message, _ in FOUND + REDACTED] + CLEAN)
def test_redaction_is_idempotent(message):
    once = redact(message)
    assert redact(once) == once


@pytest.mark.parametrize("message", [message for message, _ in FOUND])
def test_offsets_match_text_and_do_not_overlap(message):
    found = find_personal_data(message)
    for item in found:
        assert message[item.start:item.end] == item.text
        assert item.label in PLACEHOLDERS
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))


def test_ambiguous_numbers_follow_the_documented_rule():
    # 12 digits with a date up front are an NRIC even though "60..." could be dialled; with "+" it is a phone
    assert find_personal_data("601123456789")[0].label == "NRIC"
    assert find_personal_data("+601123456789")[0].label == "PHONE"
    # 10 digits starting with 0 are a phone, other 10-digit runs an account number
    assert find_personal_data("0123456789")[0].label == "PHONE"
    assert find_personal_data("1123456789")[0].label == "ACCOUNT_NUMBER"
    # a "60" number that reads as a Malaysian landline is a phone
    assert find_personal_data("6041234567")[0].label == "PHONE"
    # a BRN from a year ending in 01-12, typed together, starts with a date: an NRIC; written 4-2-6 it is a BRN
    assert find_personal_data("200501012345")[0].label == "NRIC"
    assert find_personal_data("2005-01-012345")[0].label == "BRN"
    assert find_personal_data("201913012345") == []   # neither a date nor an entity type
    # 13-19 digits are a card only when Luhn-valid
    assert find_personal_data("4111111111111111")[0].label == "CARD_NUMBER"
    assert find_personal_data("4111111111111112") == []


def test_card_number_ranks_right_after_activation_code():
    assert list(PLACEHOLDERS)[:3] == ["EMAIL", "ACTIVATION_CODE", "CARD_NUMBER"]


def test_personal_data_is_a_frozen_value():
    item = find_personal_data("kod 482913")[0]
    assert item == PersonalData("ONE_TIME_CODE", 4, 10, "482913")
    with pytest.raises(AttributeError):
        item.label = "PHONE"


def test_same_results_from_a_thread_pool():
    messages = [message for message, _ in FOUND] * 20
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(redact, messages))
    assert results == [redact(message) for message in messages]


def test_pipeline_is_rebuilt_when_its_vocabulary_is_full(monkeypatch):
    first = privacy._pipeline()
    monkeypatch.setattr(privacy, "MAX_VOCAB_STRINGS", 0)
    assert redact("kod 482913") == "kod [code]"
    assert privacy._pipeline() is not first
    assert redact("kod 482913") == "kod [code]"
