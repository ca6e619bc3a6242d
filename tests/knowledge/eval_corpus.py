"""The retrieval evaluation set: 21 short documents of a fictional company (Lumen Outfitters,
outdoor gear) and 50 questions (8 of them paraphrases sharing few words with their answer),
each with the document that answers it. Two documents are made into a real PDF and a real DOCX
before indexing, one is HTML, one plain text."""

from __future__ import annotations

# file name -> text (Markdown unless the extension says otherwise; .pdf/.docx are generated)
DOCS: dict[str, str] = {
    "refund-policy.md": """# Refund policy

Unworn items may be returned within 45 days of delivery for a full refund. Refunds go back to
the original payment card within 7 business days after the warehouse receives the parcel.

## Exceptions

Gift cards, personalised jackets and opened fuel canisters cannot be refunded.
""",
    "shipping.html": """<html><body><h1>Shipping and delivery</h1>
<p>Orders leave the Porto warehouse within two working days. Standard delivery in mainland
Portugal takes 3 to 5 days and is free above 60 euros.</p>
<h2>Islands and abroad</h2>
<p>Shipping to the Azores and Madeira costs 9 euros. We ship to every EU country; delivery to
Germany usually takes 6 days.</p></body></html>""",
    "price-list.md": """# Price list 2026

| product | price |
|---|---|
| Aurora 2-person tent | 289 euros |
| Boreal down sleeping bag | 219 euros |
| Cirrus rain jacket | 149 euros |
| Delta trekking poles (pair) | 59 euros |
| Ember camping stove | 79 euros |

Prices include VAT. Members of the Lumen Club get 10 percent off full-price items.
""",
    "faq.md": """# Frequently asked questions

## Can I change my order after paying?
Yes, within one hour of payment, from the order page. After that the order is already being
packed.

## Do you sell second-hand gear?
Yes: the Renewed section sells inspected returned gear at up to 40 percent off.

## How do I find my size?
Each product page has a size chart; jackets run slightly small, so pick one size up.
""",
    "warranty.pdf": """Warranty

Every Lumen tent carries a 3-year warranty against seam failure and broken poles. Sleeping
bags and jackets are covered for 2 years against manufacturing defects. The warranty does not
cover normal wear, fire damage or zips broken by force. To claim, send a photo of the defect
and the order number to warranty@lumen.example.
""",
    "employee-handbook.docx": """Employee handbook
## Working hours
The standard week is 37.5 hours. Core hours are 10:00 to 16:00; the rest is flexible.
## Holidays
Every employee has 25 days of paid holiday a year, plus your birthday off. Holiday requests
go through the HR portal at least two weeks ahead.
## Remote work
Staff may work from home up to three days a week with their manager's agreement.
""",
    "privacy-policy.md": """# Privacy policy

We keep order records for 10 years, as tax law requires, and marketing preferences until you
withdraw consent. Customers can ask for a copy or the deletion of their personal data by
writing to privacy@lumen.example; we answer within 30 days. We never sell customer data.
""",
    "store-locations.txt": """Our stores

Porto flagship: Rua das Flores 120, open every day 09:00-20:00.
Lisbon store: Avenida da Liberdade 45, open Monday to Saturday 10:00-19:00 and Sundays
10:00-14:00.
Braga outlet: Braga Parque, level 1, open every day 10:00-22:00.
""",
    "loyalty-program.md": """# Lumen Club

Membership is free. Members earn one point per euro spent; 100 points become a 5 euro
voucher. Points expire after 24 months without a purchase. Members get early access to sales
and free repairs on zips.
""",
    "repair-service.md": """# Repair service

Our workshop in Porto repairs tents, jackets and backpacks. Patching a tent costs from 25
euros; replacing a jacket zip costs 35 euros. Repairs take about three weeks. Send items by
post with the repair form, or drop them at any store.
""",
    "security-policy.md": """# IT security policy

Passwords must be at least 14 characters and are never shared. Multi-factor authentication is
mandatory for email and the VPN. Lost or stolen laptops must be reported to the IT help desk
within one hour. Laptops are encrypted and lock after 5 minutes idle.
""",
    "expense-policy.md": """# Travel and expense policy

Book train rather than plane for trips under 500 km. Hotel nights are reimbursed up to 120
euros in Lisbon and 100 euros elsewhere. Meals are covered up to 35 euros a day. Submit
receipts in the expense app within 30 days of the trip.
""",
    "onboarding.md": """# Onboarding new employees

On the first day, new staff get a laptop, a badge and a buddy from their team. The first week
includes a warehouse visit and a safety briefing. Probation lasts 90 days and ends with a
review with the manager.
""",
    "product-care.txt": """Caring for your gear

Wash down sleeping bags at 30 degrees with down soap and tumble dry on low heat with tennis
balls. Never machine wash a tent: clean it with a sponge and let it dry fully before storing.
Re-proof rain jackets with a wash-in waterproofer once a season.
""",
    "company-history.md": """# Our history

Lumen Outfitters was founded in 2009 by two climbers, Inês Costa and Rui Matos, in a garage
in Porto. The first product was a hand-sewn bivouac bag. The company opened its first store in
2012 and today employs 180 people.
""",
    "support-hours.md": """# Customer support

The support team answers chat and phone on weekdays from 08:00 to 20:00 and on Saturdays from
09:00 to 13:00. Email gets an answer within one business day. The phone number is
+351 220 000 000.
""",
    "b2b-wholesale.md": """# Wholesale and teams

Schools, clubs and companies ordering 20 items or more get a 15 percent wholesale discount and
an account manager. Invoices are payable within 30 days. Custom logos can be printed on
jackets from 50 units.
""",
    "sustainability.md": """# Sustainability

Since 2024 all our down is certified to the Responsible Down Standard. 70 percent of our
fabrics are recycled polyester. We offset the emissions of every shipment and aim to be net
zero by 2035.
""",
    "rental-program.md": """# Gear rental

Tents, stoves and sleeping bags can be rented for a weekend or a week. A weekend tent rental
costs 30 euros and a week costs 60 euros. A deposit of 100 euros is held on your card and
released when the gear comes back clean.
""",
    "incident-response.md": """# Security incident response

Anyone who suspects a data breach calls the security on-call number at once. The incident lead
decides within 4 hours whether customers must be told. The data protection authority is
notified within 72 hours of a confirmed breach.
""",
    "gift-cards.md": """# Gift cards

Gift cards come in values from 20 to 500 euros and are valid for 3 years. They can be used
online and in every store, but cannot be exchanged for cash or refunded.
""",
}

# (question, the document that answers it)
QUESTIONS: list[tuple[str, str]] = [
    ("How many days do I have to return an item?", "refund-policy.md"),
    ("Can I get my money back for a personalised jacket?", "refund-policy.md"),
    ("How long does delivery to Germany take?", "shipping.html"),
    ("What does shipping to the Azores cost?", "shipping.html"),
    ("How much is the Aurora tent?", "price-list.md"),
    ("What is the price of the trekking poles?", "price-list.md"),
    ("Can I change my order after I paid?", "faq.md"),
    ("Do you sell used or second-hand equipment?", "faq.md"),
    ("How long is the warranty on a tent?", "warranty.pdf"),
    ("Is a zip broken by force covered by the warranty?", "warranty.pdf"),
    ("How many days of paid holiday do employees get?", "employee-handbook.docx"),
    ("How many days a week can staff work from home?", "employee-handbook.docx"),
    ("How long do you keep order records?", "privacy-policy.md"),
    ("How do I ask for my personal data to be deleted?", "privacy-policy.md"),
    ("When is the Lisbon store open on Sundays?", "store-locations.txt"),
    ("What is the address of the Porto flagship store?", "store-locations.txt"),
    ("How many points do I need for a voucher in the Lumen Club?", "loyalty-program.md"),
    ("When do loyalty points expire?", "loyalty-program.md"),
    ("How much does it cost to replace a jacket zip?", "repair-service.md"),
    ("How long do repairs take in the workshop?", "repair-service.md"),
    ("How long must a password be?", "security-policy.md"),
    ("What should I do if my laptop is stolen?", "security-policy.md"),
    ("What is the hotel limit for a night in Lisbon?", "expense-policy.md"),
    ("Should I take the train or the plane for a short business trip?", "expense-policy.md"),
    ("How long is the probation period?", "onboarding.md"),
    ("What do new employees receive on their first day?", "onboarding.md"),
    ("How should I wash a down sleeping bag?", "product-care.txt"),
    ("Can I put my tent in the washing machine?", "product-care.txt"),
    ("Who founded Lumen Outfitters?", "company-history.md"),
    ("When did the company open its first store?", "company-history.md"),
    ("What are the support team's hours on Saturday?", "support-hours.md"),
    ("What is the customer support phone number?", "support-hours.md"),
    ("What discount do schools and clubs get for wholesale orders?", "b2b-wholesale.md"),
    ("From how many units can you print a custom logo?", "b2b-wholesale.md"),
    ("Is your down certified responsibly?", "sustainability.md"),
    ("When do you aim to reach net zero?", "sustainability.md"),
    ("How much does it cost to rent a tent for a weekend?", "rental-program.md"),
    ("How big is the deposit for rented gear?", "rental-program.md"),
    ("Who do I call when I suspect a data breach?", "incident-response.md"),
    ("Within how many hours is the authority notified of a breach?", "incident-response.md"),
    ("How long is a gift card valid?", "gift-cards.md"),
    ("Can a gift card be exchanged for cash?", "gift-cards.md"),
    # paraphrases that share few words with their answer
    ("Can I send back boots I never wore?", "refund-policy.md"),
    ("When is the phone line staffed?", "support-hours.md"),
    ("Do you fix broken backpacks?", "repair-service.md"),
    ("How quickly must a lost computer be reported?", "security-policy.md"),
    ("How much can I spend on food per day when travelling for work?", "expense-policy.md"),
    ("Who started the business?", "company-history.md"),
    ("Can I borrow a stove for a few days?", "rental-program.md"),
    ("Which materials are your clothes made from?", "sustainability.md"),
]
