#!/usr/bin/env python3
"""Regenerate the binary documents of the Kestrel Rail held-out knowledge base.

Writes, next to this script:
  kestrel/conditions-of-carriage.pdf   (fpdf2, English, 2-3 pages)
  kestrel/accessibility-guide.docx     (python-docx, headings + one table)

All wording lives in the constants below, so gold answers for these two files
can be checked against the source strings without parsing the binaries.
Usage: python3 eval/heldout/make_kestrel_binaries.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "kestrel")
FONT_DIR = "/usr/share/fonts/truetype/dejavu"

# --------------------------------------------------------------------------
# Conditions of carriage (PDF)
# --------------------------------------------------------------------------
COC_TITLE = "Kestrel Rail Conditions of Carriage"
COC_SUBTITLE = "Document KR-CoC version 4.2, effective from 1 September 2026"
COC_SECTIONS = [
    ("1. About these conditions", [
        "These conditions of carriage set out your rights and responsibilities, and ours, when you travel on trains and replacement buses run by Kestrel Rail Ltd. They form part of the contract between you and Kestrel Rail when you buy a ticket. Where these conditions and the information on our website differ, these conditions apply.",
        "Nothing in these conditions affects your statutory rights as a consumer.",
    ]),
    ("2. Buying a ticket", [
        "You must have a valid ticket, and any discount card or photocard needed with it, before you board a train. You may only buy a ticket on board if the station where you boarded had no working ticket machine and the ticket office was closed. In a penalty fares area you may otherwise be charged a penalty fare.",
        "Tickets are not transferable. A ticket bought for one person may not be used by another person, except Group Save tickets, which are valid for the group named on the ticket.",
    ]),
    ("3. How long a ticket is valid", [
        "A single ticket, or the outward half of a return ticket, is valid on the date shown and until 04:29 the following morning, so that you can complete a late evening journey.",
        "The return half of an Anytime Return or Off-Peak Return is valid on any day within one calendar month of the outward date, subject to the time restrictions of the ticket. Advance tickets are valid only on the train shown on the ticket.",
        "A ticket that has been damaged so that it cannot be read by staff or ticket gates is not valid. We will replace a damaged ticket free of charge at a ticket office if its details can be checked.",
    ]),
    ("4. Routes and breaking your journey", [
        "You may travel by any reasonable route between the stations on your ticket unless the ticket says otherwise. With an Anytime or Off-Peak ticket you may break your journey at an intermediate station and continue on the same day. You may not break your journey with an Advance ticket or a Group Save ticket.",
    ]),
    ("5. Children", [
        "Children under 5 travel free when accompanied by a fare-paying passenger, up to a limit of two children per fare-paying adult. Children aged 5 to 15 travel at child fares. Children under 11 must travel with a person aged 16 or over.",
    ]),
    ("6. Showing your ticket", [
        "You must show your ticket, and any discount card or photocard that goes with it, when asked by Kestrel Rail staff or the British Transport Police, and you must hand it over if it is found to be invalid. Staff may keep a ticket that has been altered or misused.",
        "If you are asked to show an eTicket, you must be able to display the live barcode on your phone. A flat phone battery is not an accepted reason for failing to show an eTicket.",
    ]),
    ("7. Behaviour", [
        "You must follow the instructions of our staff and the Railway Byelaws. We may refuse to carry you, or ask you to leave a train or station, if you behave in a way that is threatening, abusive or likely to cause a nuisance to other passengers, if you appear to be drunk, or if you put your feet on the seats. If you are removed from a train because of your behaviour, you will not receive a refund or compensation.",
        "Smoking and vaping are not allowed on trains or anywhere in our stations.",
    ]),
    ("8. Luggage, animals and bikes", [
        "You may take up to 3 items of luggage free of charge: 2 large items no bigger than 90 cm x 70 cm x 30 cm and 1 small item of hand luggage. Extra or oversized items may be carried for a charge if there is space. You may take up to 2 dogs or other small animals free of charge. Bikes are carried subject to space and to the restrictions published in our guide to bikes, pets and luggage. E-scooters and hoverboards are not allowed.",
        "You are responsible for your own luggage. You must not leave luggage unattended.",
    ]),
    ("9. Our liability for your property", [
        "We are only liable for loss of or damage to your luggage, bikes or animals if it was caused by the negligence of Kestrel Rail or our staff. Our liability is limited to a maximum of £1,500 per passenger per journey. To make a claim, write to Customer Relations within 14 days of the journey, with details of the loss and any receipts.",
        "We are not liable for cash, jewellery or electronic devices left unattended.",
    ]),
    ("10. Delays, cancellations and missed connections", [
        "We will do our best to run trains on time, but we do not guarantee the times shown in the timetable. If your journey is delayed by 15 minutes or more, you may claim compensation under our Delay Repay scheme, which is set out on the Delay Repay page and forms part of these conditions.",
        "If you miss a connection with another Kestrel Rail train because your first train was late, you may travel on the next available train to your destination without paying extra. This also applies to Advance tickets.",
        "If the last train of the day is cancelled and there is no other way to complete your journey, we will arrange alternative transport or overnight accommodation. If you make your own arrangements because our staff could not be contacted, we will refund reasonable taxi costs up to £75 per booking on production of a receipt within 28 days.",
        "We are not liable for any other losses caused by delays, such as missed appointments or flights, unless the law requires us to be.",
    ]),
    ("11. Refunds", [
        "Refunds are given according to the refund rules for each ticket type, published on our Refunds and Exchanges page. Admin fees may apply. No admin fee is charged when you do not travel because your train was cancelled or delayed.",
    ]),
    ("12. Accessibility", [
        "We will provide assistance to disabled passengers in line with our Accessible Travel Policy. If assistance that you booked through Kestrel Assist was not provided, you may claim compensation as described in our Accessibility guide.",
    ]),
    ("13. Changes, complaints and law", [
        "We may change these conditions from time to time. The version in force on the day you bought your ticket applies to your journey. Complaints about how we have applied these conditions should be made to Customer Relations; if you are not satisfied with our final reply you may refer the matter to the Transport Disputes Service, free of charge.",
        "These conditions are governed by the law of England and Wales.",
    ]),
]

# --------------------------------------------------------------------------
# Accessibility guide (DOCX)
# --------------------------------------------------------------------------
ACC_TITLE = "Kestrel Assist: our guide to accessible travel"
ACC_INTRO = ("Kestrel Assist is our free service for disabled passengers and anyone who needs help to travel, "
             "including older passengers, people with temporary injuries and people with hidden disabilities. "
             "This guide explains the help we offer and how to book it. It was last updated in November 2026.")
ACC_SECTIONS = [
    ("How to book help", [
        "You can book help in the Kestrel Rail app, on kestrelrail.co.uk/assist, or by contacting Kestrel Assist:",
        "Phone: 0808 157 0310 (free from mobiles and landlines), every day from 07:00 to 22:00.",
        "Relay UK: 18001 0808 157 0310.",
        "Text message: 07700 900 412.",
        "E-mail: assist@kestrelrail.co.uk.",
        "Please book at least 2 hours before your train departs. Because our booking line closes at 22:00, if your journey starts before 09:00 please book by 22:00 on the evening before. For help at a station with no staff, please book at least 24 hours ahead.",
        "When you book, tell us the date and time of your train, the stations you are travelling between, the help you need, and whether you use a wheelchair or mobility scooter. You will receive a booking reference starting with KA-.",
    ]),
    ("Turning up without booking", [
        "You do not have to book. At any staffed station, during the ticket office opening hours shown in our station list, you can ask a member of staff for help and we will help you onto the next train. This is called turn up and go. Booking in advance means we can make sure staff are ready for you at your destination, so we still recommend it, especially if you are changing trains.",
    ]),
    ("How much notice we need", [
        "The table below shows the notice we need for each type of help.",
    ]),
]
ACC_TABLE_HEADER = ["Type of help", "Notice needed", "Notes"]
ACC_TABLE_ROWS = [
    ["Ramp to get on or off the train at a staffed station", "None (turn up and go)", "Booking 2 hours ahead recommended"],
    ["Any help at an unstaffed station", "24 hours", "Oakhurst and Greyhaven are unstaffed"],
    ["Accessible taxi to or from the nearest step-free station", "24 hours", "Free of charge when your station is not step-free"],
    ["Borrowing a station wheelchair", "2 hours", "Available at Ashworth Central, Brackenford and Dunmore Quay"],
    ["Help carrying luggage", "2 hours", "Up to 3 items"],
    ["Guiding for blind or partially sighted passengers", "2 hours", "Staff meet you at the station entrance"],
    ["First journey with a mobility scooter", "10 working days", "You need a Kestrel Scooter Card first"],
]
ACC_SECTIONS_2 = [
    ("Wheelchairs", [
        "Every Kestrel Rail train carries a boarding ramp and has at least 2 spaces for wheelchairs. Coast Line trains have 4 wheelchair spaces. Wheelchair spaces can be reserved free of charge when you book help.",
        "Our ramps and wheelchair spaces can take wheelchairs up to 70 cm wide and 120 cm long, with a combined weight of wheelchair and user of up to 300 kg.",
    ]),
    ("Mobility scooters", [
        "You can take a mobility scooter on our trains if you hold a Kestrel Scooter Card. The card is free. Apply using form KR-MS1, which you can download from our website or pick up at a ticket office, and allow 10 working days for us to check that your scooter fits. Scooters must meet the same size and weight limits as wheelchairs and must be able to turn within the space available. Class 3 road scooters cannot be carried.",
    ]),
    ("Step-free access", [
        "Redwater, Oakhurst, Greyhaven and Kilnsey Bridge stations do not have step-free access to all platforms. If you cannot use the stairs at these stations, we will take you by accessible taxi to or from the nearest step-free station at no extra cost. Please book the taxi at least 24 hours before you travel.",
    ]),
    ("Hearing and sight", [
        "All staffed ticket offices have hearing induction loops. Every train has audio and visual announcements of the next station. Large-print and braille timetables are available free from Kestrel Assist.",
        "Hidden disabilities: you can pick up a free sunflower lanyard at any staffed ticket office. Our staff are trained to recognise it and offer help.",
    ]),
    ("Discounts", [
        "The Disabled Persons Card gives one third off for you and one adult companion, at any time of day. See the Discount cards page for how to apply. Passengers who are registered blind or partially sighted and travel with a companion can also buy tickets at the Disabled Persons Card discount without holding a card, by showing their registration document at the ticket office.",
    ]),
    ("If something goes wrong", [
        "If you booked help with Kestrel Assist and it was not provided, you can claim compensation of 100% of the price of the ticket for the journey affected. This is in addition to any Delay Repay. Claim through Customer Relations within 28 days of your journey and quote your KA- booking reference.",
        "If a lift at a station is out of order, staff will arrange an accessible taxi to the nearest station where you can get on or off the train. Lift faults are shown in the app.",
    ]),
]


def all_coc_text():
    parts = [COC_TITLE, COC_SUBTITLE]
    for h, paras in COC_SECTIONS:
        parts.append(h)
        parts.extend(paras)
    return "\n".join(parts)


def all_acc_text():
    parts = [ACC_TITLE, ACC_INTRO]
    for h, paras in ACC_SECTIONS:
        parts.append(h)
        parts.extend(paras)
    parts.append("\t".join(ACC_TABLE_HEADER))
    for row in ACC_TABLE_ROWS:
        parts.append("\t".join(row))
    for h, paras in ACC_SECTIONS_2:
        parts.append(h)
        parts.extend(paras)
    return "\n".join(parts)


def make_pdf(path):
    from fpdf import FPDF

    class CocPDF(FPDF):
        def footer(self):
            self.set_y(-15)
            self.set_font("DejaVu", "", 8)
            self.cell(0, 10, f"Kestrel Rail Ltd - KR-CoC v4.2 - page {self.page_no()}", align="C")

    pdf = CocPDF(format="A4")
    pdf.add_font("DejaVu", "", os.path.join(FONT_DIR, "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", os.path.join(FONT_DIR, "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    pdf.set_title(COC_TITLE)
    pdf.set_author("Kestrel Rail Ltd")
    pdf.set_font("DejaVu", "B", 16)
    pdf.multi_cell(0, 9, COC_TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(0, 6, COC_SUBTITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for heading, paras in COC_SECTIONS:
        pdf.set_font("DejaVu", "B", 11.5)
        pdf.multi_cell(0, 7, heading, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 10)
        for p in paras:
            pdf.multi_cell(0, 5.2, p, align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1.5)
        pdf.ln(1)
    pdf.output(path)
    return pdf.page_no()


def make_docx(path):
    import datetime
    from docx import Document

    doc = Document()
    doc.core_properties.title = ACC_TITLE
    doc.core_properties.author = "Kestrel Rail Ltd"
    # fixed timestamps so that regenerating gives the same metadata
    doc.core_properties.created = datetime.datetime(2026, 11, 20, 9, 0, 0)
    doc.core_properties.modified = datetime.datetime(2026, 11, 20, 9, 0, 0)
    doc.add_heading(ACC_TITLE, level=0)
    doc.add_paragraph(ACC_INTRO)
    for heading, paras in ACC_SECTIONS:
        doc.add_heading(heading, level=1)
        for p in paras:
            style = "List Bullet" if p.split(":")[0] in ("Phone", "Relay UK", "Text message", "E-mail") else None
            doc.add_paragraph(p, style=style)
    table = doc.add_table(rows=1, cols=len(ACC_TABLE_HEADER))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ACC_TABLE_HEADER):
        cell.text = ""
        cell.paragraphs[0].add_run(text).bold = True
    for row in ACC_TABLE_ROWS:
        cells = table.add_row().cells
        for cell, text in zip(cells, row):
            cell.text = text
    for heading, paras in ACC_SECTIONS_2:
        doc.add_heading(heading, level=1)
        for p in paras:
            doc.add_paragraph(p)
    doc.save(path)


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    pdf_path = os.path.join(OUT_DIR, "conditions-of-carriage.pdf")
    docx_path = os.path.join(OUT_DIR, "accessibility-guide.docx")
    pages = make_pdf(pdf_path)
    make_docx(docx_path)
    print(f"wrote {pdf_path} ({pages} pages, {os.path.getsize(pdf_path)} bytes)")
    print(f"wrote {docx_path} ({os.path.getsize(docx_path)} bytes)")


if __name__ == "__main__":
    main()
